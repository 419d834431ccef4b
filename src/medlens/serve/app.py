"""The inference service: ``create_app`` builds it, ``serve`` runs it with uvicorn.

Endpoints (OpenAPI at ``/openapi.json``):

- ``POST /v1/predict?model=NAME`` a classification: calibrated probabilities, ``decision``
  (the class, or ``refer`` when a human should decide), ``predicted_class`` /
  ``predicted_index`` (the model's class at the run's threshold, also for a referred case),
  ``refer`` / ``refer_reason`` (the run's refer band, the out-of-distribution flag ``ood``),
  with ``uncertainty=tta|mc_dropout`` (``ensemble`` for an ensemble) the predictive entropy
  and mutual information, and a Grad-CAM overlay of the predicted class (``heatmap=false``
  leaves it out; an ensemble has none, and ``heatmap_omitted`` says why).
- ``POST /v1/segment?model=NAME&format=auto|png|nifti|dicom-seg|json`` the mask file (DICOM
  SEG for a zipped series only). ``format=json``, or ``Accept: application/json`` with any
  format, answers JSON instead: the voxels of each class (``class_voxels``) and the mask file
  in base64 (``mask_base64``, ``mask_format``, ``media_type``, ``filename``). A file response
  also carries ``x-class-voxels: name=count;...`` with each class name percent-encoded
  (UTF-8), so the header stays ASCII whatever the class names. ``uncertainty=tta|mc_dropout``
  adds the per-case summary ``medlens predict --uncertainty`` writes (``uncertainty`` in the
  JSON, ``x-uncertainty: key=value;...`` on a file response) and, in the JSON answer only,
  the per-voxel maps it writes (``uncertainty_maps``: ``entropy`` and ``mutual_information``,
  each ``filename``, ``media_type``, ``units``, ``max_nats`` and ``base64``; a 16-bit PNG
  with 65535 = ``max_nats`` = log K nats beside a PNG mask, else a float32 NIfTI in nats);
  ``uncertainty_maps`` is null without ``uncertainty=``.
- ``POST /v1/detect?model=NAME&min_score=S`` the objects a detection run finds in a 2D
  image: each box (``x1, y1, x2, y2`` in the image's own pixels), class and score, and the
  count per class; a Mask R-CNN run adds each detection's instance mask (COCO RLE ``mask``,
  ``mask_area_px``). Without ``min_score`` the findings (each class's threshold) are listed.
- ``POST /v1/preview`` the uploaded image as a PNG (for the web page).
- ``GET /v1/models``; ``GET /healthz`` (the process is up); ``GET /readyz`` (models loaded);
  ``GET /metrics`` (Prometheus: requests by status, latency histogram, model load times).
- ``GET /`` the web page (plain HTML and JS, served from this package).

Uploads are one ``file`` field of a ``multipart/form-data`` body: PNG, JPEG, a 2D TIFF, a DICOM
file, a zip of one DICOM series, or NIfTI. Errors are JSON ``{"detail": reason, "request_id":
id}``, the reason a fixed sentence that never repeats a value from the upload or a server path:
400 malformed request or a Host the service does not answer to, 401 no or unknown token, 403
token without access to the model, 404 unknown model (listing only the models the token may
use), 413 over the size limit or an image declaring more voxels than the voxel budget, 415
unsupported type, 422 unreadable content, an image the model cannot take, or an uncertainty the
model cannot give, 500 a fault of the model or its run folder (its message, the run folder
named by its name only), 503 every worker busy for the whole time limit (``Retry-After``), 504
over the time limit.

Work: reading and inference run on ``max_concurrent`` worker threads (``serve.workers``). A
request waits for a free worker within its time limit (503 when none frees); a request that
times out (504) cancels its work at the next stage, and its worker stays counted until the
work has stopped, so retries never stack up threads.

Authentication: with a ``TokenConfig`` every ``/v1`` call needs ``Authorization: Bearer
<token>``. Without one there is no authentication at all, and ``serve`` therefore binds
only to a loopback address (127.0.0.1, ::1, localhost); requests must then name a loopback
host or one of ``allowed_hosts`` in their ``Host`` header (DNS rebinding, ``serve.hosts``).
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from medlens import __version__
from medlens.data.budget import VoxelBudgetError, voxel_budget
from medlens.errors import ConfigError, MedlensError
from medlens.serve.access_log import AccessLogMiddleware
from medlens.serve.auth import Grant, TokenConfig, authorize
from medlens.serve.detection_model import ServedDetector
from medlens.serve.ensemble_model import ServedEnsemble
from medlens.serve.hosts import TrustedHostMiddleware, is_loopback, normalise_hosts
from medlens.serve.inputs import Upload, read_upload, too_many_voxels
from medlens.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from medlens.serve.metrics import ServiceMetrics
from medlens.serve.models_store import Served, ServedModel, load_models
from medlens.serve.service_errors import ServiceError
from medlens.serve.uploads import receive_upload
from medlens.serve.workers import DEFAULT_CONCURRENT, Checkpoint, Job, WorkerPool

__all__ = ["create_app", "is_loopback", "serve"]

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent / "web"
UNPACK_FACTOR = 8  # a zipped series may unpack to this many times the upload limit
T = TypeVar("T")

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": (
                                "PNG, JPEG, a 2D TIFF, DICOM, a zip of one DICOM series, or NIfTI"
                            ),
                        }
                    },
                }
            }
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in {
        401: "no or unknown bearer token",
        403: "the token may not use this model",
        404: "unknown model",
        413: "the upload is over the size limit, or the image over the voxel budget",
        415: "unsupported file type",
        422: "the content cannot be read or does not fit the model",
        500: "the model or its run folder failed (not the image), or an internal error",
        503: "every worker stayed busy for the whole time limit; retry later",
        504: "the request took longer than the time limit",
    }.items()
}
DOES_NOT_FIT = (
    "the image cannot be used with this model: after the run's preprocessing its size, "
    "channels or dimensions do not fit (GET /v1/models gives the model's input_shape)"
)


def create_app(
    run_dirs: list[Path],
    tokens: TokenConfig | None = None,
    max_upload_mb: float = 100.0,
    timeout_s: float = 60.0,
    engine: str = "torch",
    max_voxels: int | None = None,
    max_concurrent: int = DEFAULT_CONCURRENT,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """Load the runs and build the service.

    Args:
        run_dirs: finished run folders; each is served under its folder's name.
        tokens: bearer tokens and the models each may use; None switches authentication off
            (then serve on a loopback address only, as ``serve`` enforces).
        max_upload_mb: the largest request body accepted, in MiB (a zipped series may unpack
            to 8 times this).
        timeout_s: the longest a request may take (upload, reading and inference), in
            seconds; a request over it is answered 504.
        engine: ``torch`` or ``onnx`` (onnxruntime on the run's ``model.onnx``, exported at
            start-up into a private folder when missing or stale).
        max_voxels: the voxel budget: an upload declaring more voxels (all channels) is
            refused with 413 before it is decoded; None for ``$MEDLENS_MAX_VOXELS`` or the
            default of ``medlens.data.budget`` (256 Mi).
        max_concurrent: how many requests read and infer at once, on as many threads; more
            wait for a free one within their time limit (503 when none frees).
        allowed_hosts: host names or addresses, besides the loopback ones, that requests may
            name in their ``Host`` header. Checked without tokens always, and with tokens
            when given.

    Raises:
        ConfigError: bad limits, engine, host names or run names.
        InputError: a run folder that cannot be loaded.
    """
    if not max_upload_mb > 0:
        raise ConfigError("--max-upload-mb", "must be positive")
    if not timeout_s > 0:
        raise ConfigError("--timeout-s", "must be positive")
    if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int):
        raise ConfigError("--max-concurrent", "must be a whole number")
    if max_concurrent < 1:
        raise ConfigError("--max-concurrent", "must be at least 1")
    if max_voxels is not None and (
        isinstance(max_voxels, bool) or not isinstance(max_voxels, int) or max_voxels < 1
    ):
        raise ConfigError("--max-voxels", "must be a positive whole number")
    # pydicom's warnings quote the values of the files they read: uploads are patient data
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")
    budget = voxel_budget(max_voxels)  # None: $MEDLENS_MAX_VOXELS (a bad value is its error)
    hosts = normalise_hosts(allowed_hosts or ())
    workspace = tempfile.TemporaryDirectory(prefix="medlens-serve-")  # 0700, removed at exit
    root = Path(workspace.name)
    (root / "onnx").mkdir()
    try:
        models = load_models([Path(p) for p in run_dirs], engine=engine, onnx_cache=root / "onnx")
    except BaseException:
        workspace.cleanup()  # now, not at interpreter exit: a failed start leaves nothing
        raise
    limits = {
        "max_bytes": int(max_upload_mb * 2**20),
        "timeout_s": float(timeout_s),
        "max_voxels": budget,
    }
    workers = WorkerPool(max_concurrent)

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        yield
        workers.shutdown()
        workspace.cleanup()

    app = FastAPI(
        title="medlens inference service",
        version=__version__,
        description=__doc__,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN; the schema is enough
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.models = models
    app.state.tokens = tokens
    app.state.workspace = root
    app.state.limits = limits
    app.state.workers = workers
    if tokens is None or allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed=hosts)
    metrics = ServiceMetrics()
    for served in models.values():
        metrics.loaded(served.name, served.engine, served.load_seconds)
    app.state.metrics = metrics
    # added last: the outermost, it logs and counts every request
    app.add_middleware(AccessLogMiddleware, metrics=metrics)
    app.add_exception_handler(ServiceError, _service_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    _add_routes(app)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def _service_error_response(request: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse(
        {"detail": exc.reason, "request_id": _request_id(request)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming the invalid parameters, never the values sent (FastAPI's default repeats
    them)."""
    names = sorted(
        {str(error["loc"][-1]) for error in exc.errors() if error.get("loc") and error["loc"]}
    )
    known = [name for name in names if name in _PARAMETERS]
    listing = ", ".join(known) if known else "the request"
    return JSONResponse(
        {"detail": f"invalid parameter: {listing}", "request_id": _request_id(request)},
        status_code=422,
    )


_PARAMETERS = {
    "model",
    "format",
    "heatmap",
    "file",
    "authorization",
    "min_score",
    "uncertainty",
}


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


bearer_scheme = HTTPBearer(auto_error=False, description="a token from the service's token file")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
MaskFormat = Annotated[
    Literal["auto", "png", "nifti", "dicom-seg", "json"],
    Query(
        description="auto: DICOM SEG for a zipped series, PNG for 2D, NIfTI for volumes; "
        "json: the voxel counts, the auto mask and any uncertainty maps (base64) as JSON"
    ),
]
ModelName = Annotated[
    str | None, Query(description="the model's name (optional when one is served)")
]


def _served(
    request: Request, credentials: HTTPAuthorizationCredentials | None, model: str | None
) -> Served:
    """Authorise the caller for ``model`` (or the only model) and return it. A 400 or 404
    lists only the models the caller's token may use."""
    models: dict[str, Served] = request.app.state.models
    token = credentials.credentials if credentials else None
    if model is None:
        grant = authorize(request.app.state.tokens, token, None)
        if len(models) != 1:
            raise ServiceError(400, f"name the model: ?model= one of {_listing(models, grant)}")
        model = next(iter(models))
    grant = authorize(request.app.state.tokens, token, model)
    if model not in models:
        raise ServiceError(
            404, f"no model of that name; this token may use {_listing(models, grant)}"
        )
    return models[model]


def _listing(models: dict[str, Served], grant: Grant) -> str:
    names = sorted(name for name in models if grant.allows(name))
    return ", ".join(names) if names else "no model"


def _require_route(served: Served, route: str) -> None:
    """Each task has its endpoint (``Task.route``); a model asked on another one is a 400."""
    if served.task.route != route:
        raise ServiceError(
            400, f"{served.name!r} is a {served.task.name} model; use {served.task.route}"
        )


def _classic(served: Served, route: str) -> ServedModel:
    """The classifier or segmenter ``route`` (``/v1/predict``, ``/v1/segment``) takes."""
    _require_route(served, route)
    if not isinstance(served, ServedModel):  # a route of its own for every task: never here
        raise ServiceError(400, f"{served.name!r} cannot be used on {route}")
    return served


def _classifier(served: Served) -> ServedModel | ServedEnsemble:
    """The single run or ensemble ``/v1/predict`` takes (400 for a model of another task)."""
    _require_route(served, "/v1/predict")
    if isinstance(served, ServedEnsemble):
        return served
    return _classic(served, "/v1/predict")


def _detector(served: Served) -> ServedDetector:
    """The detector ``/v1/detect`` takes (400 for a model of another task)."""
    _require_route(served, "/v1/detect")
    if not isinstance(served, ServedDetector):
        raise ServiceError(400, f"{served.name!r} cannot be used on /v1/detect")
    return served


async def _with_upload(request: Request, work_fn: Callable[[Upload, Path, Checkpoint], T]) -> T:
    """Receive the upload into a private folder, then, on a worker thread, read it and run
    ``work_fn(upload, folder, checkpoint)``, all within the time limit.

    The job waits in the worker pool's queue (``WorkerPool``) within the request's time
    limit: 503 when no worker took it in time. A request over the limit whose job had started
    is answered 504 and its job cancelled: it stops at its next checkpoint, holding its worker
    until then. The folder is removed when the work ends (by the worker itself when it had
    started)."""
    limits = request.app.state.limits
    workers: WorkerPool = request.app.state.workers
    work = Path(tempfile.mkdtemp(dir=request.app.state.workspace))
    job: Job[T] | None = None
    try:
        with anyio.fail_after(limits["timeout_s"]):
            raw = await receive_upload(request, work, limits["max_bytes"])
            job = Job(work, functools.partial(_process, raw, limits, work, work_fn))
            result = await workers.run(job)
    except TimeoutError:
        if job is not None and job.cancel():  # queued, and no worker took it in time
            raise ServiceError(
                503, "every worker is busy; retry later", {"Retry-After": "5"}
            ) from None
        raise ServiceError(
            504, f"the request took longer than the limit of {limits['timeout_s']:g} s"
        ) from None
    finally:
        # cancel(): True when the job had not started (it never will); the worker removes
        # the folder of a job it ran
        if job is None or job.cancel() or job.state == "abandoned":
            shutil.rmtree(work, ignore_errors=True)
    return result  # type: ignore[return-value]  # None only for an abandoned job


def _process(
    raw: Path,
    limits: dict[str, Any],
    work: Path,
    work_fn: Callable[[Upload, Path, Checkpoint], T],
    checkpoint: Checkpoint,
) -> T:
    """Read the upload and run ``work_fn``; every failure becomes a one-line ServiceError
    with a fixed sentence (the reason, which may quote the image, stays on the server)."""
    max_unpacked = limits["max_bytes"] * UNPACK_FACTOR
    try:
        upload = read_upload(raw, max_unpacked, limits["max_voxels"], checkpoint)
        checkpoint()
        return work_fn(upload, work, checkpoint)
    except ServiceError:
        raise
    except VoxelBudgetError as exc:
        raise too_many_voxels(exc.limit) from None
    except MedlensError as exc:
        log.info("the image does not fit the model (%s)", type(exc).__name__)
        raise ServiceError(422, DOES_NOT_FIT) from None
    except Exception as exc:  # never a traceback to the client; the type alone to the log
        log.error("unexpected %s while processing a request", type(exc).__name__)
        raise ServiceError(500, "internal error while processing the image") from None


def _wants_json(request: Request, mask_format: str) -> bool:
    """``format=json``, or an ``Accept`` header naming ``application/json``."""
    if mask_format == "json":
        return True
    accepted = request.headers.get("accept", "")
    types = {part.split(";")[0].strip().lower() for part in accepted.split(",")}
    return "application/json" in types


def _add_routes(app: FastAPI) -> None:  # noqa: C901 - one place that lists every endpoint
    from medlens.serve.analysis import check_uncertainty, classify, preview_png, segment
    from medlens.serve.detection import detect
    from medlens.serve.ensemble import classify_ensemble

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> dict[str, Any]:
        """Every model is loaded and warmed up (they are before the service accepts requests)."""
        models = request.app.state.models
        return {
            "status": "ready",
            "models": len(models),
            "auth": request.app.state.tokens is not None,
        }

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics(request: Request, credentials: Credentials) -> Response:
        """Prometheus text format: requests by endpoint and status, latency histograms, model
        load times. With tokens, any valid token may read it."""
        authorize(request.app.state.tokens, credentials.credentials if credentials else None, None)
        return Response(request.app.state.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/v1/models", tags=["models"], responses={401: _ERRORS[401]})
    async def list_models(request: Request, credentials: Credentials) -> dict[str, Any]:
        """The models this token may use."""
        grant = authorize(
            request.app.state.tokens, credentials.credentials if credentials else None, None
        )
        models = request.app.state.models.values()
        return {"models": [m.describe() for m in models if grant.allows(m.name)]}

    @app.post("/v1/predict", tags=["inference"], openapi_extra=_UPLOAD_BODY, responses=_ERRORS)
    async def predict(
        request: Request,
        credentials: Credentials,
        model: ModelName = None,
        heatmap: Annotated[
            bool, Query(description="add the Grad-CAM overlay (PNG, base64)")
        ] = True,
        uncertainty: Annotated[
            str | None,
            Query(
                description="tta | mc_dropout (a single run), ensemble (an ensemble): add the "
                "predictive entropy and mutual information (nats) of sampled predictions"
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Classify one image: calibrated probabilities, the decision (the class at the run's
        threshold, or ``refer``), the predicted class, whether to refer it to a human (refer
        band, out-of-distribution flag), optionally its uncertainty, and Grad-CAM."""
        served = _classifier(_served(request, credentials, model))
        check_uncertainty(served, uncertainty)
        if isinstance(served, ServedEnsemble):
            ensemble = served
            return await _with_upload(
                request,
                lambda upload, work, checkpoint: classify_ensemble(
                    ensemble, upload, heatmap, checkpoint, uncertainty
                ),
            )
        single = served
        return await _with_upload(
            request,
            lambda upload, work, checkpoint: classify(
                single, upload, work, heatmap, checkpoint, uncertainty
            ),
        )

    @app.post(
        "/v1/segment",
        tags=["inference"],
        openapi_extra=_UPLOAD_BODY,
        responses=_ERRORS,
        response_class=Response,
    )
    async def segment_endpoint(
        request: Request,
        credentials: Credentials,
        model: ModelName = None,
        format: MaskFormat = "auto",
        uncertainty: Annotated[
            str | None,
            Query(
                description="tta | mc_dropout: add the per-case summary of sampled masks "
                "(mean_entropy, mean_mutual_information in nats, expected_dice, uncertainty; "
                "a file response: the x-uncertainty header) and, in the JSON answer only, "
                "the per-voxel entropy and mutual information maps (uncertainty_maps: a "
                "16-bit PNG, 65535 = max_nats = log K nats, beside a PNG mask; else a "
                "float32 NIfTI in nats; each base64)"
            ),
        ] = None,
    ) -> Response:
        """Segment one image; the response is the mask file, or JSON with the voxels of each
        class, the uncertainty summary and per-voxel maps asked for, and the mask in base64
        (``format=json`` or ``Accept: application/json``). A file response carries the
        summary in its ``x-uncertainty`` header and no maps."""
        served = _classic(_served(request, credentials, model), "/v1/segment")
        check_uncertainty(served, uncertainty)
        as_json = _wants_json(request, format)
        mask_format = "auto" if format == "json" else format
        mask = await _with_upload(
            request,
            lambda upload, work, checkpoint: segment(
                served, upload, mask_format, work, checkpoint, uncertainty, maps=as_json
            ),
        )
        if as_json:
            return JSONResponse(mask.as_json(served))
        headers = {
            "content-disposition": f'attachment; filename="{mask.filename}"',
            "x-model": quote(served.name, safe=""),
            "x-weights-sha256": served.weights_sha256,
            "x-class-voxels": mask.voxels_header(),
        }
        summary = mask.uncertainty_header()
        if summary is not None:
            headers["x-uncertainty"] = summary
        return Response(mask.content, media_type=mask.media_type, headers=headers)

    @app.post("/v1/detect", tags=["inference"], openapi_extra=_UPLOAD_BODY, responses=_ERRORS)
    async def detect_endpoint(
        request: Request,
        credentials: Credentials,
        model: ModelName = None,
        min_score: Annotated[
            float | None,
            Query(
                ge=0.0,
                le=1.0,
                description="list every detection scoring at least this; default: the "
                "findings, each class at the threshold the run chose on validation",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Find objects in one 2D image: each box (``x1, y1, x2, y2`` in the image's own
        pixels, (0, 0) the top left corner), its class and score, and the count per class."""
        served = _detector(_served(request, credentials, model))
        return await _with_upload(
            request,
            lambda upload, work, checkpoint: detect(served, upload, checkpoint, min_score),
        )

    @app.post(
        "/v1/preview",
        tags=["inference"],
        openapi_extra=_UPLOAD_BODY,
        responses=_ERRORS,
        response_class=Response,
    )
    async def preview(request: Request, credentials: Credentials) -> Response:
        """The uploaded image as a PNG (a volume's middle slice), for display."""
        authorize(request.app.state.tokens, credentials.credentials if credentials else None, None)
        png = await _with_upload(request, lambda upload, work, checkpoint: preview_png(upload))
        return Response(png, media_type="image/png")


def serve(
    run_dirs: list[Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    tokens_file: Path | None = None,
    engine: str = "torch",
    max_upload_mb: float = 100.0,
    timeout_s: float = 60.0,
    max_voxels: int | None = None,
    max_concurrent: int = DEFAULT_CONCURRENT,
    allowed_hosts: Sequence[str] | None = None,
    processes: int = 1,
) -> None:
    """``medlens serve RUN_DIR... [--host] [--port] [--tokens FILE] [--engine torch|onnx]
    [--max-upload-mb] [--timeout-s] [--max-voxels] [--max-concurrent] [--allowed-hosts]
    [--processes N]``: run the service with uvicorn until interrupted.

    ``processes`` > 1 runs that many copies of the service behind one socket, each with its
    own models and ``max_concurrent`` workers, and ``/metrics`` summed over all of them
    (``serve.processes``): for machines with more cores than one interpreter lock can use.

    Tokens come from ``tokens_file``, else from ``$MEDLENS_TOKENS``; with neither, there is
    no authentication, ``host`` must be a loopback address, and requests must name a
    loopback host or one of ``allowed_hosts`` (see ``create_app``). Logs are JSON lines on
    stderr.

    Raises:
        ConfigError: no tokens and a non-loopback ``host``; a bad token file or option.
        InputError: a run folder that cannot be loaded.
    """
    import uvicorn

    from medlens.serve.access_log import configure_json_logging
    from medlens.serve.auth import load_token_config

    tokens = load_token_config(tokens_file)
    if tokens is None and not is_loopback(host):
        raise ConfigError(
            "--host",
            f"without tokens (--tokens FILE or $MEDLENS_TOKENS) the service has no authentication "
            f"and binds only to a loopback address such as 127.0.0.1, not {host!r}",
        )
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError("--processes", "must be a whole number, at least 1")
    configure_json_logging()
    if processes > 1:
        from medlens.serve.processes import run_processes

        options = {
            "run_dirs": [str(Path(p).resolve()) for p in run_dirs],
            "tokens_file": None if tokens_file is None else str(Path(tokens_file).resolve()),
            "max_upload_mb": max_upload_mb,
            "timeout_s": timeout_s,
            "engine": engine,
            "max_voxels": max_voxels,
            "max_concurrent": max_concurrent,
            "allowed_hosts": list(allowed_hosts or ()),
        }
        run_processes(options, host, port, processes)
        return
    app = create_app(
        run_dirs,
        tokens,
        max_upload_mb=max_upload_mb,
        timeout_s=timeout_s,
        engine=engine,
        max_voxels=max_voxels,
        max_concurrent=max_concurrent,
        allowed_hosts=allowed_hosts,
    )
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, server_header=False)

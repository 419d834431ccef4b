"""The inference service: ``create_app`` builds it, ``serve`` runs it with uvicorn.

Endpoints (OpenAPI at ``/openapi.json``):

- ``POST /v1/predict?model=NAME`` a classification: probabilities, the decision at the run's
  threshold, and a Grad-CAM overlay (``heatmap=false`` leaves it out).
- ``POST /v1/segment?model=NAME&format=auto|png|nifti|dicom-seg`` the mask file (DICOM SEG for
  a zipped series only).
- ``POST /v1/preview`` the uploaded image as a PNG (for the web page).
- ``GET /v1/models``; ``GET /healthz`` (the process is up); ``GET /readyz`` (models loaded).
- ``GET /`` the web page (plain HTML and JS, served from this package).

Uploads are one ``file`` field of a ``multipart/form-data`` body: PNG, JPEG, a DICOM file, a
zip of one DICOM series, or NIfTI. Errors are JSON ``{"detail": reason, "request_id": id}``:
400 malformed request, 401 no or unknown token, 403 token without access to the model,
404 unknown model, 413 over the size limit, 415 unsupported type, 422 unreadable content or
an image the model cannot take, 504 over the time limit.

Authentication: with a ``TokenConfig`` every ``/v1`` call needs ``Authorization: Bearer
<token>``. Without one there is no authentication at all, and ``serve`` therefore binds
only to a loopback address (127.0.0.1, ::1, localhost).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from medlens import __version__
from medlens.errors import ConfigError, MedlensError
from medlens.serve.access_log import AccessLogMiddleware
from medlens.serve.auth import TokenConfig, authorize
from medlens.serve.inputs import Upload, read_upload
from medlens.serve.models_store import ServedModel, load_models
from medlens.serve.service_errors import ServiceError
from medlens.serve.uploads import receive_upload

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
                            "description": "PNG, JPEG, DICOM, a zip of one DICOM series, or NIfTI",
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
        413: "the upload is over the size limit",
        415: "unsupported file type",
        422: "the content cannot be read or does not fit the model",
        504: "the request took longer than the time limit",
    }.items()
}


def create_app(
    run_dirs: list[Path],
    tokens: TokenConfig | None = None,
    max_upload_mb: float = 100.0,
    timeout_s: float = 60.0,
    engine: str = "torch",
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

    Raises:
        ConfigError: bad limits, engine or run names.
        InputError: a run folder that cannot be loaded.
    """
    if not max_upload_mb > 0:
        raise ConfigError("--max-upload-mb", "must be positive")
    if not timeout_s > 0:
        raise ConfigError("--timeout-s", "must be positive")
    workspace = tempfile.TemporaryDirectory(prefix="medlens-serve-")  # 0700, removed at exit
    root = Path(workspace.name)
    (root / "onnx").mkdir()
    models = load_models([Path(p) for p in run_dirs], engine=engine, onnx_cache=root / "onnx")
    limits = {"max_bytes": int(max_upload_mb * 2**20), "timeout_s": float(timeout_s)}

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        yield
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
    app.add_middleware(AccessLogMiddleware)
    app.add_exception_handler(ServiceError, _service_error_response)  # type: ignore[arg-type]
    _add_routes(app)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def _service_error_response(request: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse(
        {"detail": exc.reason, "request_id": _request_id(request)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


bearer_scheme = HTTPBearer(auto_error=False, description="a token from the service's token file")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
MaskFormat = Annotated[
    Literal["auto", "png", "nifti", "dicom-seg"],
    Query(description="auto: DICOM SEG for a zipped series, PNG for 2D, NIfTI for volumes"),
]
ModelName = Annotated[
    str | None, Query(description="the model's name (optional when one is served)")
]


def _served(
    request: Request, credentials: HTTPAuthorizationCredentials | None, model: str | None
) -> ServedModel:
    """Authorise the caller for ``model`` (or the only model) and return it."""
    models: dict[str, ServedModel] = request.app.state.models
    token = credentials.credentials if credentials else None
    if model is None:
        authorize(request.app.state.tokens, token, None)
        if len(models) != 1:
            raise ServiceError(400, f"name the model: ?model= one of {', '.join(sorted(models))}")
        model = next(iter(models))
    authorize(request.app.state.tokens, token, model)
    if model not in models:
        raise ServiceError(404, f"no model named {model!r}; GET /v1/models lists them")
    return models[model]


def _require_route(served: ServedModel, route: str) -> None:
    """Each task has its endpoint (``Task.route``); a model asked on another one is a 400."""
    if served.task.route != route:
        raise ServiceError(
            400, f"{served.name!r} is a {served.task.name} model; use {served.task.route}"
        )


class _Job(Generic[T]):
    """Work handed to a thread: it removes its folder when done, or, when the request gave
    up before the thread started it, the request removes the folder and the job never runs."""

    def __init__(self, work: Path, fn: Callable[[], T]) -> None:
        self.work = work
        self.fn = fn
        self.lock = threading.Lock()
        self.state = "pending"

    def run(self) -> T | None:
        with self.lock:
            if self.state == "abandoned":
                return None
            self.state = "running"
        try:
            return self.fn()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def abandon(self) -> bool:
        """True when the job had not started (it never will); the caller cleans up."""
        with self.lock:
            if self.state == "pending":
                self.state = "abandoned"
                return True
            return False


async def _with_upload(request: Request, work_fn: Callable[[Upload, Path], T]) -> T:
    """Receive the upload into a private folder, read it and run ``work_fn(upload, folder)`` in
    a worker thread, all within the time limit. The folder is removed when the work ends (by
    the worker itself when a timeout abandons it)."""
    limits = request.app.state.limits
    work = Path(tempfile.mkdtemp(dir=request.app.state.workspace))
    job: _Job[T] | None = None
    try:
        with anyio.fail_after(limits["timeout_s"]):
            raw = await receive_upload(request, work, limits["max_bytes"])
            unpack_limit = limits["max_bytes"] * UNPACK_FACTOR
            job = _Job(work, functools.partial(_process, raw, unpack_limit, work, work_fn))
            result = await anyio.to_thread.run_sync(job.run, abandon_on_cancel=True)
    except TimeoutError:
        raise ServiceError(
            504, f"the request took longer than the limit of {limits['timeout_s']:g} s"
        ) from None
    finally:
        if job is None or job.abandon():
            shutil.rmtree(work, ignore_errors=True)
    return result  # type: ignore[return-value]  # None only for an abandoned job


def _process(raw: Path, max_unpacked: int, work: Path, work_fn: Callable[[Upload, Path], T]) -> T:
    """Read the upload and run ``work_fn``; every failure becomes a one-line ServiceError."""
    try:
        return work_fn(read_upload(raw, max_unpacked), work)
    except ServiceError:
        raise
    except MedlensError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise ServiceError(422, reason.splitlines()[0]) from None
    except Exception as exc:  # never a traceback to the client; the type alone to the log
        log.error("unexpected %s while processing a request", type(exc).__name__)
        raise ServiceError(500, "internal error while processing the image") from None


def _add_routes(app: FastAPI) -> None:  # noqa: C901 - one place that lists every endpoint
    from medlens.serve.analysis import classify, preview_png, segment

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
    ) -> dict[str, Any]:
        """Classify one image: probabilities, the decision at the run's threshold, Grad-CAM."""
        served = _served(request, credentials, model)
        _require_route(served, "/v1/predict")
        return await _with_upload(
            request, lambda upload, work: classify(served, upload, work, heatmap)
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
    ) -> Response:
        """Segment one image; the response is the mask file."""
        served = _served(request, credentials, model)
        _require_route(served, "/v1/segment")
        mask = await _with_upload(
            request, lambda upload, work: segment(served, upload, format, work)
        )
        return Response(
            mask.content,
            media_type=mask.media_type,
            headers={
                "content-disposition": f'attachment; filename="{mask.filename}"',
                "x-model": served.name,
                "x-weights-sha256": served.weights_sha256,
                "x-class-voxels": ";".join(f"{k}={v}" for k, v in mask.voxels.items()),
            },
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
        png = await _with_upload(request, lambda upload, work: preview_png(upload))
        return Response(png, media_type="image/png")


LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    run_dirs: list[Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    tokens_file: Path | None = None,
    engine: str = "torch",
    max_upload_mb: float = 100.0,
    timeout_s: float = 60.0,
) -> None:
    """``medlens serve RUN_DIR... [--host] [--port] [--tokens FILE] [--engine torch|onnx]
    [--max-upload-mb] [--timeout-s]``: run the service with uvicorn until interrupted.

    Tokens come from ``tokens_file``, else from ``$MEDLENS_TOKENS``; with neither, there is
    no authentication and ``host`` must be a loopback address. Logs are JSON lines on stderr.

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
    configure_json_logging()
    app = create_app(
        run_dirs, tokens, max_upload_mb=max_upload_mb, timeout_s=timeout_s, engine=engine
    )
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, server_header=False)

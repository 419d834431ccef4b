"""Shape features of an ROI mask in physical units (IBSI chapter 3.1, pyradiomics shape).

The outline is the iso-line (2D, marching squares) or iso-surface (3D, marching cubes) at
0.5 of the binary mask, so a mesh runs half-way between ROI and background voxel centres.
Axis lengths come from a principal component analysis of the ROI voxel centres in mm.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist
from skimage.measure import find_contours, marching_cubes, mesh_surface_area

from medlens.features.roi import RegionOfInterest


def shape_features(roi: RegionOfInterest) -> dict[str, float]:
    """2D or 3D shape features of ``roi.mask`` with its spacing (intensities are not used).

    2D (``shape_*``): ``area_mm2`` (pixel count x pixel area), ``mesh_area_mm2`` (area inside
    the outline), ``perimeter_mm`` (outline length, holes included), ``circularity``
    (4 pi area / perimeter², 1 for a disc; pyradiomics' ``Sphericity`` is its square root),
    ``major_axis_mm``/``minor_axis_mm`` (4 sqrt of the PCA eigenvalues), ``elongation``
    (sqrt(minor/major eigenvalue), 1 for a disc), ``maximum_diameter_mm``, ``extent``
    (mesh area / area of the outline's axis-aligned bounding box), ``solidity`` (mesh area /
    convex hull area). A plane figure has no flatness; that needs a third axis.

    3D: ``volume_mm3`` (voxel count x voxel volume), ``mesh_volume_mm3``,
    ``surface_area_mm2``, ``surface_to_volume_ratio`` (per mm), ``sphericity``
    ((36 pi V²)^(1/3) / A with the mesh volume, 1 for a ball), the three axis lengths in mm,
    ``elongation`` (sqrt(minor/major)), ``flatness`` (sqrt(least/major)),
    ``maximum_diameter_mm``, ``extent`` and ``solidity`` as in 2D with volumes.

    A one-voxel ROI has no principal axes; its elongation and flatness are reported as 1.
    """
    if roi.spatial_dims == 2:
        return _shape_2d(roi)
    return _shape_3d(roi)


def _principal_variances(roi: RegionOfInterest) -> np.ndarray:
    """Eigenvalues (mm²) of the covariance of the ROI voxel centres, largest first."""
    coords = np.argwhere(roi.mask) * np.asarray(roi.spacing)
    cov = np.atleast_2d(np.cov(coords, rowvar=False, bias=True))
    return np.clip(np.linalg.eigvalsh(cov)[::-1], 0.0, None)


def _axis_ratio(smaller: float, major: float) -> float:
    return float(np.sqrt(smaller / major)) if major > 0 else 1.0


def _hull_features(points: np.ndarray, size: float) -> dict[str, float]:
    hull = ConvexHull(points)
    corners = points[hull.vertices]
    return {
        "maximum_diameter_mm": float(pdist(corners).max()),
        "extent": size / float(np.prod(np.ptp(points, axis=0))),
        "solidity": size / float(hull.volume),
    }


def _shape_2d(roi: RegionOfInterest) -> dict[str, float]:
    spacing = np.asarray(roi.spacing)
    contours = [c * spacing for c in find_contours(np.pad(roi.mask, 1).astype(float), 0.5)]
    perimeter = sum(float(np.linalg.norm(np.diff(c, axis=0), axis=1).sum()) for c in contours)
    # Signed shoelace areas: holes run the other way round and subtract themselves.
    signed = sum(0.5 * float(np.sum(c[:-1, 0] * c[1:, 1] - c[1:, 0] * c[:-1, 1])) for c in contours)
    mesh_area = abs(signed)
    major, minor = _principal_variances(roi)
    out = {
        "area_mm2": float(roi.mask.sum()) * roi.voxel_volume,
        "mesh_area_mm2": mesh_area,
        "perimeter_mm": perimeter,
        "circularity": 4.0 * np.pi * mesh_area / perimeter**2,
        "major_axis_mm": 4.0 * float(np.sqrt(major)),
        "minor_axis_mm": 4.0 * float(np.sqrt(minor)),
        "elongation": _axis_ratio(minor, major),
        **_hull_features(np.vstack(contours), mesh_area),
    }
    return {f"shape_{name}": float(value) for name, value in out.items()}


def _shape_3d(roi: RegionOfInterest) -> dict[str, float]:
    padded = np.pad(roi.mask, 1).astype(np.float32)
    verts, faces, _, _ = marching_cubes(padded, level=0.5, spacing=roi.spacing)
    area = float(mesh_surface_area(verts, faces))
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    # Divergence theorem: the signed tetrahedra from the origin sum to the enclosed volume.
    mesh_volume = abs(float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0)
    major, minor, least = _principal_variances(roi)
    out = {
        "volume_mm3": float(roi.mask.sum()) * roi.voxel_volume,
        "mesh_volume_mm3": mesh_volume,
        "surface_area_mm2": area,
        "surface_to_volume_ratio": area / mesh_volume,
        "sphericity": (36.0 * np.pi * mesh_volume**2) ** (1.0 / 3.0) / area,
        "major_axis_mm": 4.0 * float(np.sqrt(major)),
        "minor_axis_mm": 4.0 * float(np.sqrt(minor)),
        "least_axis_mm": 4.0 * float(np.sqrt(least)),
        "elongation": _axis_ratio(minor, major),
        "flatness": _axis_ratio(least, major),
        **_hull_features(verts, mesh_volume),
    }
    return {f"shape_{name}": float(value) for name, value in out.items()}

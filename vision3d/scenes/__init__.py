"""Scenes whose answer is known exactly: pinhole cameras and rigs, analytic shapes and meshes, exact renders
and labelled point samples. The ground truth that :mod:`vision3d.implicit`, :mod:`vision3d.nerf` and
Gaussian splatting are measured against.

Main names are re-exported lazily (``import vision3d.scenes`` imports no torch)::

    from vision3d.scenes import Camera, orbit_cameras, make_scene, render_views

- :mod:`vision3d.scenes.cameras` -- :class:`Camera` (OpenCV convention, conversion to and from OpenGL/NeRF),
  ``look_at``, pixel rays, projection; rigs: ``orbit_cameras``, ``hemisphere_cameras``, ``random_cameras``.
- :mod:`vision3d.scenes.shapes` -- spheres, boxes, tori, capsules and CSG unions with exact signed distances,
  ray intersections (closed form or sphere tracing) and uniform surface samples.
- :mod:`vision3d.scenes.mesh` -- :class:`TriangleMesh`: Möller–Trumbore ray casting, winding numbers, signed
  distances; mesh files through trimesh.
- :mod:`vision3d.scenes.raster` -- a z-buffer triangle rasterizer (batched; the ray caster's first hits, faster).
- :mod:`vision3d.scenes.rendering` -- Blinn–Phong renders with depth, normals and masks; :class:`ViewSet`.
- :mod:`vision3d.scenes.library` -- named scenes (``sphere``, ``box``, ``torus``, ``capsule``, ``blocks``,
  ``body``).
- :mod:`vision3d.scenes.samplers` -- surface, signed-distance and occupancy samples.
"""

from __future__ import annotations

from mpenv.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "cameras": (
        "Camera", "hemisphere_cameras", "look_at", "opencv_to_opengl", "opengl_to_opencv", "orbit_cameras",
        "pixel_rays", "project", "random_cameras",
    ),
    "library": ("body_mesh", "make_scene", "scene_names", "scene_views"),
    "mesh": ("TriangleMesh", "load_mesh", "sample_mesh_surface", "save_mesh"),
    "raster": ("Fragments", "rasterize"),
    "rendering": ("Scene", "View", "ViewSet", "render", "render_views"),
    "samplers": ("PointSamples", "occupancy_samples", "sdf_samples", "surface_samples"),
    "shapes": ("Box", "Capsule", "Sphere", "Torus", "Union"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

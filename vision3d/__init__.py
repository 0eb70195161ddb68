"""3D vision of the course: an SMPL-style body model and fitting, 2D pose, implicit surfaces, NeRF,
hash grids and Gaussian splatting. Filled by later milestones; every torch module here goes through
:mod:`mpenv.device` for device selection and seeding."""

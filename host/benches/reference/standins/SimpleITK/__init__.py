"""A stand-in for SimpleITK (its wheel is 53 MB) on the GPU machine, where a device call carries 64 MiB at most
and nothing can be installed (scripts/gpu-bench.sh). MONAI Label 0.8.5 imports it when it
starts; the infer bench's NIfTI studies never use it (nibabel reads and writes them). Any
use fails, so a run that needed the real package fails instead of measuring something else."""


def __getattr__(name):
    raise AttributeError(f"SimpleITK.{name}: SimpleITK is a stand-in on this machine (scripts/gpu-bench.sh)")

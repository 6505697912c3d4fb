"""A stand-in for ITK (itk 5.4's wheels are 110 MB) on the GPU machine, where a device call carries 64 MiB at most
and nothing can be installed (scripts/gpu-bench.sh). MONAI Label 0.8.5 imports it when it
starts; the infer bench's NIfTI studies never use it (nibabel reads and writes them). Any
use fails, so a run that needed the real package fails instead of measuring something else."""


def __getattr__(name):
    raise AttributeError(f"itk.{name}: itk is a stand-in on this machine (scripts/gpu-bench.sh)")

"""A MONAI Label 0.8.5 app with a 3-D DeepGrow task built the way MONAI Label's radiology
`deepgrow_3d` is (MONAI's deepgrow transforms: AddGuidanceFromPointsd, SpatialCropGuidanced,
Resized to the model size, ResizeGuidanced, AddGuidanceSignald, RestoreLabeld), running the
brain app's click network (image + foreground + background guidance in, background + brain
out) on a 128³ region around the clicks, so that clicks_vs_monailabel.py can time one click
→ label on MONAI Label's server against labelhost's `brain_deepgrow`. The intensity step is
the brain app's percentile scaling instead of the radiology app's CT window. The network's
path comes from `--conf model PATH`.
"""
from monai.apps.deepgrow.transforms import (
    AddGuidanceFromPointsd,
    AddGuidanceSignald,
    ResizeGuidanced,
    RestoreLabeld,
    SpatialCropGuidanced,
)
from monai.inferers import SimpleInferer
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    Resized,
    ScaleIntensityRangePercentilesd,
    Spacingd,
    ToNumpyd,
    Transposed,
)
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask

ROI, MODEL_SIZE = [128, 128, 128], [64, 64, 64]


class DeepGrow3D(BasicInferTask):
    def __init__(self, model):
        super().__init__(path=model, network=None, type=InferType.DEEPGROW, labels={"brain": 1},
                         dimension=3, description="3-D DeepGrow on a 128³ region (labelhost's click bench)")

    def pre_transforms(self, data=None):
        return [
            LoadImaged(keys="image", image_only=False),
            Transposed(keys="image", indices=[2, 0, 1]),
            Spacingd(keys="image", pixdim=[1.0, 1.0, 1.0], mode="bilinear"),
            AddGuidanceFromPointsd(ref_image="image", guidance="guidance", spatial_dims=3),
            EnsureChannelFirstd(keys="image", channel_dim="no_channel"),
            SpatialCropGuidanced(keys="image", guidance="guidance", spatial_size=ROI),
            Resized(keys="image", spatial_size=MODEL_SIZE, mode="area"),
            ResizeGuidanced(guidance="guidance", ref_image="image"),
            ScaleIntensityRangePercentilesd(keys="image", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
            AddGuidanceSignald(image="image", guidance="guidance"),
            EnsureTyped(keys="image", device=data.get("device") if data else None),
        ]

    def inferer(self, data=None):
        return SimpleInferer()

    def inverse_transforms(self, data=None):
        return None  # RestoreLabeld undoes the crop and resize ([] would invert every pre-transform)

    def post_transforms(self, data=None):
        return [
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys="pred", argmax=True),
            ToNumpyd(keys="pred"),
            RestoreLabeld(keys="pred", ref_image="image", mode="nearest"),
            Transposed(keys="pred", indices=[1, 2, 0]),
        ]


class ClicksApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        self.model = conf["model"]
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="clicks",
                         description="3-D DeepGrow for labelhost's click benchmark")

    def init_infers(self):
        return {"brain_deepgrow": DeepGrow3D(self.model)}

"""A MONAI Label 0.8.5 app that runs deepbet's two-stage brain extraction, written against
MONAI Label's own interfaces (BasicInferTask, MONAI transforms, its Restored and Writer), so
that infer_vs_monailabel.py can time MONAI Label's server on the same pipeline as the brain
app's `brain_extraction`. Model paths come from `--conf bbox_model PATH --conf model PATH`.
"""
import itk
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from monai.data import MetaTensor
from monai.transforms import (
    EnsureChannelFirstd,
    KeepLargestConnectedComponentd,
    LoadImaged,
    MapTransform,
    Orientationd,
)
from monai.transforms.utils import get_largest_connected_component_mask
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask
from monailabel.transform.post import Restored
from monailabel.transform.writer import Writer

SMALL, LARGE = 128, 256
# On the GPU machine ITK is a stand-in (its wheels are too big to carry there, see
# scripts/gpu-bench.sh): MONAI Label's Writer then writes with its nibabel option.
ITK_STANDIN = "stand-in" in (itk.__doc__ or "")


def normalize(x, low, high):
    x = ((x - low) / (high - low)).clamp(0, 1)
    return 0.226 * (x - x.mean()) / x.std() + 0.449


def grow(first, end, scale, n):
    centre = np.round((end + first) / 2 * scale)
    size = np.round((end - first) * scale * 1.2)
    return slice(max(0, int(centre - size / 2)), min(n, int(centre + size / 2)))


class FillHolesd(MapTransform):
    """deepbet's own hole filling (scipy); MONAI's FillHolesd is 5-7x slower on ch2 here."""

    def __call__(self, data):
        d = dict(data)
        for key in self.keys:
            filled = ndimage.binary_fill_holes(d[key][0].numpy() > 0)
            d[key][0] = torch.from_numpy(filled.astype(np.uint8))
        return d


class DeepBet(BasicInferTask):
    def __init__(self, bbox_model, model):
        super().__init__(path=model, network=None, type=InferType.SEGMENTATION, labels={"brain": 1},
                         dimension=3, description="deepbet 1.0.2 brain extraction (two stages)")
        self.bbox_path = bbox_model
        self.bbox_networks = {}

    def pre_transforms(self, data=None):
        return [LoadImaged(keys="image"), EnsureChannelFirstd(keys="image"),
                Orientationd(keys="image", axcodes="RAS")]

    def bbox_network(self, device):
        if device not in self.bbox_networks:
            self.bbox_networks[device] = torch.jit.load(self.bbox_path, map_location=device).eval()
        return self.bbox_networks[device]

    def run_inferer(self, data, convert_to_batch=True, device="cuda"):
        image = data["image"]
        x = torch.nan_to_num(image.as_tensor()[0].to(device))
        small = F.interpolate(x[None, None], (SMALL,) * 3, mode="nearest-exact")[0, 0]
        low, high = small.quantile(0.005), small.quantile(0.995)
        with torch.no_grad():
            p_small = self.bbox_network(device)(normalize(small, low, high)[None, None])[0, 1]
            m_small = get_largest_connected_component_mask(p_small > 0.5).cpu().numpy()
            box = []
            for axis, dims in enumerate([(1, 2), (0, 2), (0, 1)]):
                hits = np.where(m_small.mean(dims) > 0.02)[0]
                box.append(grow(hits.min(), hits.max() + 1, x.shape[axis] / SMALL, x.shape[axis]))
            box = tuple(box)
            big = F.interpolate(x[box][None, None], (LARGE,) * 3, mode="nearest-exact")
            p_big = self._get_network(device, data)(normalize(big, low, high))[0, 1]
            crop = tuple(s.stop - s.start for s in box)
            m_crop = F.interpolate(p_big[None, None], crop, mode="nearest-exact")[0, 0] > 0.5
        mask = torch.zeros((1, *x.shape), dtype=torch.uint8)
        mask[(0, *box)] = m_crop.to(torch.uint8).cpu()
        data["pred"] = MetaTensor(mask, meta=image.meta, applied_operations=image.applied_operations)
        return data

    def inverse_transforms(self, data=None):
        return []  # every invertible pre-transform: Orientationd back to the image's axes

    def writer(self, data, extension=None, dtype=None):
        if not ITK_STANDIN:
            return super().writer(data, extension, dtype)
        for key, value in (("result_extension", extension), ("result_dtype", dtype), ("labels", self.labels)):
            if value is not None:
                data[key] = value
        return Writer(label=self.output_label_key, json=self.output_json_key, nibabel=True)(data)

    def post_transforms(self, data=None):
        return [KeepLargestConnectedComponentd(keys="pred"), FillHolesd(keys="pred"),
                Restored(keys="pred", ref_image="image")]


class DeepBetApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        self.bbox_model, self.model = conf["bbox_model"], conf["model"]
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="deepbet",
                         description="deepbet brain extraction for labelhost's benchmark")

    def init_infers(self):
        return {"brain_extraction": DeepBet(self.bbox_model, self.model)}

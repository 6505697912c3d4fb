"""Opens and writes studies folders with MONAI Label 0.8.5's own LocalDatastore, to check
that a folder written by one server opens in the other.

  python datastore_interop.py write DIR IMAGE LABEL   # MONAI Label writes DIR
  python datastore_interop.py read DIR                # MONAI Label reads DIR

Both print one JSON line describing what MONAI Label sees.
"""
import json
import sys

from monailabel.datastore.local import LocalDatastore


def describe(ds):
    images = sorted(ds.list_images())
    return {
        "images": images,
        "labels": {i: ds.get_labels_by_image_id(i) for i in images},
        "image_info": {i: ds.get_image_info(i) for i in images},
        "label_info": {i: {t: ds.get_label_info(i, t) for t in ds.get_labels_by_image_id(i)} for i in images},
        "labeled": sorted(ds.get_labeled_images()),
    }


def main():
    mode, folder = sys.argv[1], sys.argv[2]
    ds = LocalDatastore(folder, extensions=("*.nii.gz", "*.nii", "*.nrrd"), auto_reload=False)
    if mode == "write":
        image, label = sys.argv[3], sys.argv[4]
        ds.add_image("mlimg", image, {"from": "monailabel"})
        ds.save_label("mlimg", label, "final", {"label_info": [{"name": "brain", "idx": 1}]})
        ds.save_label("mlimg", label, "original", {"model": "brain_otsu"})
        ds.update_image_info("mlimg", {"note": "written by MONAI Label"})
    print(json.dumps(describe(ds), default=str))


if __name__ == "__main__":
    main()

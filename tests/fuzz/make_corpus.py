#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora under tests/fuzz/corpus/ (committed; rerun to
remake them): small valid NIfTI-1 and NRRD files of several datatypes and encodings, MONAI
Label's multipart forms, and request params. Standard library only."""

import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def nifti(dims, datatype, bitpix, data, endian="<", slope=0.0, inter=0.0, extension=b""):
    """A single-file NIfTI-1 (n+1) header, optional extension, then data."""
    dim = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    vox_offset = 352 + len(extension)
    h = struct.pack(endian + "i", 348)
    h += b"\0" * 10 + b"\0" * 18 + struct.pack(endian + "i", 0) + struct.pack(endian + "h", 0)
    h += b"r" + b"\0"  # regular, dim_info
    h += struct.pack(endian + "8h", *dim)
    h += struct.pack(endian + "3f", 0, 0, 0)  # intent_p1..3
    h += struct.pack(endian + "h", 0)  # intent_code
    h += struct.pack(endian + "h", datatype) + struct.pack(endian + "h", bitpix)
    h += struct.pack(endian + "h", 0)  # slice_start
    h += struct.pack(endian + "8f", 1, 1.5, 2, 2.5, 1, 1, 1, 1)  # pixdim (qfac 1)
    h += struct.pack(endian + "f", vox_offset)
    h += struct.pack(endian + "2f", slope, inter)
    h += struct.pack(endian + "h", 0) + b"\0" + b"\012"  # slice_end, slice_code, xyzt_units
    h += struct.pack(endian + "2f", 0, 0)  # cal_max, cal_min
    h += struct.pack(endian + "2f", 0, 0) + struct.pack(endian + "2i", 0, 0)  # slice_duration, toffset, glmax, glmin
    h += b"fuzz seed".ljust(80, b"\0") + b"\0" * 24
    h += struct.pack(endian + "2h", 1, 1)  # qform_code, sform_code
    h += struct.pack(endian + "6f", 0, 0, 0, -10, 20, -5)  # quatern b,c,d, offsets
    h += struct.pack(endian + "4f", 1, 0, 0, -10)
    h += struct.pack(endian + "4f", 0, 1.5, 0, 20)
    h += struct.pack(endian + "4f", 0, 0, 2, -5)
    h += b"\0" * 16 + b"n+1\0"
    assert len(h) == 348, len(h)
    ext_flag = b"\1\0\0\0" if extension else b"\0\0\0\0"
    return h + ext_flag + extension + data


def nifti_seeds():
    u8 = bytes(range(24))
    put("nifti", "u8_4x3x2.nii", nifti([4, 3, 2], 2, 8, u8))
    put("nifti", "u8_4x3x2.nii.gz", gzip.compress(nifti([4, 3, 2], 2, 8, u8), mtime=0))
    f32 = struct.pack("<27f", *[i * 0.5 for i in range(27)])
    put("nifti", "f32_scaled_3x3x3.nii", nifti([3, 3, 3], 16, 32, f32, slope=2.0, inter=1.0))
    i16 = struct.pack(">8h", *range(-4, 4))
    put("nifti", "i16_be_2x2x2.nii", nifti([2, 2, 2], 4, 16, i16, endian=">"))
    f4d = struct.pack("<16f", *range(16))
    put("nifti", "f32_4d_2x2x2x2.nii", nifti([2, 2, 2, 2], 16, 32, f4d))
    ext = struct.pack("<ii", 16, 6) + b"seed\0\0\0\0"
    put("nifti", "u8_extension.nii", nifti([4, 3, 2], 2, 8, u8, extension=ext))
    put("nifti", "truncated.nii", nifti([4, 3, 2], 2, 8, u8)[:360])


def nrrd(fields, data):
    head = "NRRD0004\n" + "".join(f"{k}: {v}\n" for k, v in fields) + "\n"
    return head.encode() + data


def nrrd_seeds():
    space = [("space", "left-posterior-superior"),
             ("space directions", "(1,0,0) (0,1.5,0) (0,0,2)"),
             ("space origin", "(10,-20,5)")]
    put("nrrd", "u8_raw.nrrd", nrrd([("type", "uint8"), ("dimension", 3), ("sizes", "3 2 2"),
                                     ("encoding", "raw")] + space, bytes(range(12))))
    f32 = struct.pack("<8f", *range(8))
    put("nrrd", "f32_gzip.nrrd", nrrd([("type", "float"), ("dimension", 3), ("sizes", "2 2 2"),
                                      ("endian", "little"), ("encoding", "gzip")] + space,
                                     gzip.compress(f32, mtime=0)))
    put("nrrd", "f64_gz.nrrd", nrrd([("type", "double"), ("dimension", 3), ("sizes", "2 2 1"),
                                    ("endian", "little"), ("encoding", "gz")],
                                   gzip.compress(struct.pack("<4d", 1, -2, 3, 4), mtime=0)))
    put("nrrd", "i16_be_raw.nrrd", nrrd([("type", "int16"), ("dimension", 3), ("sizes", "2 1 2"),
                                        ("endian", "big"), ("encoding", "raw")] + space,
                                       struct.pack(">4h", 1, 2, 3, 4)))


def form(parts):
    out = b""
    for headers, body in parts:
        out += b"--labelhost-fuzz\r\n" + "".join(h + "\r\n" for h in headers).encode()
        out += b"\r\n" + body + b"\r\n"
    return out + b"--labelhost-fuzz--\r\n"


def multipart_seeds():
    # Byte 0: chunk size - 1; byte 1: filler runs; byte 2: filler position (see the target).
    infer = form([
        (['Content-Disposition: form-data; name="params"'], b'{"label_tag": "original"}'),
        (['Content-Disposition: form-data; name="file"; filename="image.nii.gz"',
          "Content-Type: application/octet-stream"], gzip.compress(b"\0" * 64, mtime=0)),
    ])
    put("multipart", "infer_form", bytes([63, 0, 0]) + infer)
    label = form([
        (['Content-Disposition: form-data; name="label"; filename="label.nii.gz"'], b"\1" * 32),
        (['Content-Disposition: form-data; name="params"'], b"{}"),
    ])
    put("multipart", "label_form_bytewise", bytes([0, 0, 0]) + label)
    put("multipart", "long_headers", bytes([200, 140, 40]) + label)
    # Found by the target: headers of exactly the limit, the blank line split across two
    # chunks (7 bytes each here; the filler lands before the blank line).
    put("multipart", "headers_at_the_limit", bytes([6, 128, 208]) + b"--labelhost-fuzz\r\n\r\n")


def params_seeds():
    for name, value in [
        ("sliding_window", {"sw_batch_size": 4, "sw_overlap": 0.5, "sw_mode": "constant"}),
        ("deepedit", {"brain": [[1, 2, 3]], "background": "[[0, 0, 0]]", "label": "brain"}),
        ("deepgrow", {"foreground": [[3, 3, 3], [4.5, 1, 0]], "background": []}),
        ("train", {"name": "train_01", "max_epochs": 5, "val_split": 0.2, "gpus": "all",
                   "lr": 1e-4, "pretrained": True, "max_iterations": 10}),
        ("flags", {"save_label": "false", "label_tag": "final", "sw_overlap": None}),
    ]:
        put("params", name + ".json", json.dumps(value).encode())


if __name__ == "__main__":
    nifti_seeds()
    nrrd_seeds()
    multipart_seeds()
    params_seeds()

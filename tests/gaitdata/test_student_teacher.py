"""The student as a deployable model: ONNX metadata that other tools can run from, and
``gaitdata label --teacher student`` with the usual box proposers and label-set contract."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from gaitdata import student  # noqa: E402
from gaitdata.errors import GaitdataError  # noqa: E402
from gaitdata.io import sha256_file  # noqa: E402
from gaitdata.labels import read_label_meta, read_labels  # noqa: E402
from gaitdata.student.quant import read_onnx_metadata  # noqa: E402
from gaitdata.testing.figures import trained_tiny_student  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root, run_dir = trained_tiny_student(tmp_path_factory.mktemp("toys"))
    onnx_path = student.compress(run_dir, "onnx")
    return root, run_dir, onnx_path


def _crop_from_metadata(image: np.ndarray, box, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessing written out from the metadata alone (no gaitdata crop code)."""
    h, w = meta["input_size"]
    x, y, bw, bh = box
    cx, cy = x + bw / 2, y + bh / 2
    aspect = meta["box_aspect"]
    if bw > aspect * bh:
        bh = bw / aspect
    else:
        bw = bh * aspect
    bw, bh = bw * meta["box_scale"], bh * meta["box_scale"]
    mat = np.array([[w / bw, 0, w / 2 - cx * w / bw], [0, h / bh, h / 2 - cy * h / bh]])
    crop = cv2.warpAffine(image, mat, (w, h), flags=cv2.INTER_LINEAR, borderValue=0).astype(np.float32)
    x = (crop * meta["pixel_scale"] - np.array(meta["mean"], np.float32)) / np.array(meta["std"], np.float32)
    return x.transpose(2, 0, 1)[None].astype(np.float32), mat


def test_onnx_carries_its_preprocessing_and_runs_without_gaitdata(run):
    root, run_dir, onnx_path = run
    meta = read_onnx_metadata(onnx_path)
    assert meta["schema_version"] == 1
    assert meta["input_size"] == [64, 48] and meta["heatmap_stride"] == 4 and meta["heatmap_size"] == [16, 12]
    assert meta["mean"] == pytest.approx([0.406, 0.457, 0.480]) and meta["std"] == [1.0, 1.0, 1.0]
    assert meta["box_scale"] == 1.25 and meta["box_aspect"] == pytest.approx(0.75)
    assert meta["keypoint_names"][15:] == ["left_ankle", "right_ankle"] and [15, 16] in meta["flip_pairs"]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    assert isinstance(shape[0], str) and shape[1:] == [3, 64, 48]  # a dynamic batch axis
    # another tool: crop by the metadata, argmax of each heatmap, back through the crop's affine
    labels = read_labels(root, "ground_truth")
    row = labels[labels["video_id"] == "toy04"].iloc[3]
    img = cv2.cvtColor(cv2.imread(str(root / f"frames/toy04/rgb/{int(row.frame_index):06d}.jpg")), cv2.COLOR_BGR2RGB)
    box = (row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h)
    x, mat = _crop_from_metadata(img, box, meta)
    hm = sess.run(None, {meta["input_name"]: np.concatenate([x, x, x])})[0]  # batch of 3
    assert hm.shape == (3, 17, 16, 12) and np.allclose(hm[0], hm[2], atol=1e-5)
    k = hm.shape[1]
    idx = hm[0].reshape(k, -1).argmax(1)
    uv = np.stack([idx % 12, idx // 12], 1) * meta["heatmap_stride"]
    inv = cv2.invertAffineTransform(mat)
    xy = uv @ inv[:, :2].T + inv[:, 2]
    gt = np.asarray(row.keypoints, float).reshape(17, 3)[:, :2]
    # within two heatmap cells (argmax without sub-pixel refinement) for most joints
    assert np.median(np.linalg.norm(xy - gt, axis=1)) < 2 * meta["heatmap_stride"] * row.bbox_h * 1.25 / 64
    # and gaitdata's own predictor, run from the ONNX file, agrees with the PyTorch checkpoint
    from gaitdata.student.inference import StudentPredictor

    a = StudentPredictor(onnx_path).predict([img], [np.array([box])])[0]
    b = StudentPredictor(run_dir / "best.pt").predict([img], [np.array([box])])[0]
    assert a.shape == (1, 17, 3) and np.abs(a - b).max() < 1e-2


def test_onnx_without_metadata_is_refused(tmp_path, run):
    onnx = pytest.importorskip("onnx")
    _, _, onnx_path = run
    proto = onnx.load(str(onnx_path))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(GaitdataError, match="no gaitdata preprocessing metadata"):
        read_onnx_metadata(bare)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(GaitdataError, match="not a readable ONNX file"):
        read_onnx_metadata(junk)


def test_label_with_the_student_as_teacher(run, tmp_path):
    from click.testing import CliRunner

    from gaitdata.cli.label import command

    root, run_dir, onnx_path = run
    r = CliRunner().invoke(command, [str(root), "--teacher", "student", "--weights", str(run_dir),
                                     "--boxes", "labels:ground_truth", "--label-set", "stud", "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    df = read_labels(root, "stud")
    frames = root / "frames.parquet"
    assert frames.is_file()
    assert len(df) == 5 * 12 and df["has_person"].all()  # one person per frame, every frame accounted for
    meta = read_label_meta(root, "stud")
    assert meta["teacher"] == "student" and meta["weights_hash"] == sha256_file(onnx_path)
    extra = meta["teacher_config"]["extra"]
    assert extra["backend"] == "onnxruntime" and extra["consistency"]["fix_swaps"]
    assert meta["teacher_config"]["input_size"] == [64, 48] and meta["boxes"]
    # the labels are the student's: close to the ground truth on the frames it was trained on
    gt = read_labels(root, "ground_truth").set_index(["video_id", "frame_index"])
    d = []
    for row in df.itertuples():
        g = np.asarray(gt.loc[(row.video_id, row.frame_index), "keypoints"], float).reshape(17, 3)
        d.append(np.linalg.norm(np.asarray(row.keypoints, float).reshape(17, 3)[:, :2] - g[:, :2], axis=1))
    assert np.median(np.concatenate(d)) < 6.0  # px, figures ~80 px tall
    assert {"visibility", "track_id", "is_subject", "qa_flags"} <= set(df.columns)
    # the PyTorch checkpoint gives the same labels (another backend, same contract)
    from pseudolabel.runner import label

    s = label(root, teacher="student", weights=run_dir / "best.pt", boxes="labels:ground_truth", label_set="stud_pt",
              progress=False)  # fmt: skip
    assert s.n_frames == 60 and read_label_meta(root, "stud_pt")["teacher_config"]["extra"]["backend"] == "torch"
    pt = read_labels(root, "stud_pt")
    a = np.stack(df.sort_values(["video_id", "frame_index"])["keypoints"].map(np.asarray))
    b = np.stack(pt.sort_values(["video_id", "frame_index"])["keypoints"].map(np.asarray))
    assert np.abs(a - b).max() < 0.5


def test_student_teacher_bad_weights(tmp_path, run):
    from pseudolabel.registry import create_teacher

    with pytest.raises(GaitdataError, match="needs weights"):
        create_teacher("student")
    with pytest.raises(GaitdataError, match="not found"):
        create_teacher("student", weights=str(tmp_path / "nope.onnx"))
    empty = tmp_path / "run"
    empty.mkdir()
    with pytest.raises(GaitdataError, match="holds no model.onnx, best.pt or last.pt"):
        create_teacher("student", weights=str(empty))
    teacher = create_teacher("student", weights=str(run[2]))
    img = np.zeros((40, 30, 3), np.uint8)
    out = teacher.predict([img, img], [np.zeros((0, 4)), None])
    assert out[0] == [] and len(out[1]) == 1  # no boxes: no person; None: the whole image
    assert json.dumps(teacher.cfg.extra)  # provenance is plain data

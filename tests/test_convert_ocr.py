"""Legibility: tesseract reads our fine-mode pages at least as well as ghostscript's
``tiffg4`` output of the same PDF at the same resolution (204 x 196)."""

import re
import subprocess
from collections import Counter

from fastfax.demo import Line, make_pdf
from fastfax.document.convert import convert

WORDS = (
    "thank you for your order we are glad to confirm that the parts will leave our "
    "warehouse on monday morning and should reach your office by the end of the week "
    "please check the quantities against your purchase order and let us know at once"
).split()


def _recall(image, truth):
    text = subprocess.run(
        ["tesseract", str(image), "-", "--psm", "6"], capture_output=True, text=True, check=True
    ).stdout.lower()
    got = Counter(re.findall(r"[a-z]+", text))
    return sum(min(n, got[w]) for w, n in truth.items()) / sum(truth.values())


def test_word_recall_at_least_ghostscripts(tmp_path):
    # Small type (4.5 to 6 pt) in three faces, where binarisation decides legibility.
    lines = []
    for face in ("Times-Roman", "Helvetica", "Courier"):
        for n, size in enumerate((4.5, 5.0, 5.5, 6.0)):
            lines.append(Line(" ".join(WORDS[n * 7 : n * 7 + 14]), size, face, gap=size * 1.6))
    pdf = tmp_path / "small.pdf"
    make_pdf(pdf, [lines])
    truth = Counter(w for line in lines for w in line.text.split())

    gs_tif = tmp_path / "gs.tif"
    subprocess.run(
        [
            "gs",
            "-q",
            "-dNOPAUSE",
            "-dBATCH",
            "-dSAFER",
            "-sDEVICE=tiffg4",
            "-r204x196",
            f"-sOutputFile={gs_tif}",
            str(pdf),
        ],
        check=True,
    )
    ours = tmp_path / "ours.tif"
    (result,) = convert([(pdf, ours)], processes=1)
    assert result.ok, result.error

    ours_recall, gs_recall = _recall(ours, truth), _recall(gs_tif, truth)
    assert gs_recall > 0.5  # the test is not vacuous: ghostscript's output is readable
    assert ours_recall >= gs_recall, (ours_recall, gs_recall)

"""Documents to fax pages: every input kind, every output format, layout, errors, batches.

Outputs are checked with independent readers: libtiff (through Pillow and tiffinfo) for
TIFF, PDFium and ghostscript for PDF, Pillow for PNG and PBM.
"""

import ctypes
import os
import subprocess

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from fastfax import codec, tiff
from fastfax.demo import Line, make_pdf
from fastfax.document.convert import ConvertError, Options, convert, render_document, save
from fastfax.document.layout import layout_for
from fastfax.document.render import open_source
from fastfax.page import Page

A4 = layout_for("a4", "fine")


def _text_pdf(path, pages=2, size=(595.28, 841.89)):
    make_pdf(
        path, [[Line(f"Page {n + 1} of the test document", 14)] for n in range(pages)], size=size
    )
    return str(path)


def _quadrant_image(mode="RGB", size=(600, 800), where=(0, 0)):
    """White image, the quadrant ``where`` (column, row of 2 x 2) black."""
    img = Image.new(mode, size, "white" if mode != "1" else 1)
    w, h = size[0] // 2, size[1] // 2
    x, y = where[0] * w, where[1] * h
    img.paste("black" if mode != "1" else 0, (x, y, x + w, y + h))
    return img


def _quadrants(page, layout, src_size, dpi=(100, 100)):
    """Black fraction of the four quadrants of where a source image lands on the page."""
    place = layout.fit_pixels(src_size[0], src_size[1], *dpi)
    arr = page.to_array()[place.y : place.y + place.height, place.x : place.x + place.width]
    h, w = arr.shape
    return np.array(
        [
            [
                arr[
                    r * h // 2 + 4 : (r + 1) * h // 2 - 4, c * w // 2 + 4 : (c + 1) * w // 2 - 4
                ].mean()
                for c in range(2)
            ]
            for r in range(2)
        ]
    )


@pytest.mark.parametrize(
    "fmt,mode,params",
    [
        ("PNG", "RGB", {}),
        ("PNG", "L", {}),
        ("JPEG", "RGB", {"quality": 95}),
        ("GIF", "P", {}),
        ("BMP", "RGB", {}),
        ("WEBP", "RGB", {"lossless": True}),
        ("PPM", "1", {}),  # binary PBM (P4)
        ("TIFF", "RGB", {"compression": "tiff_lzw"}),
    ],
)
def test_image_inputs_land_on_the_page(tmp_path, fmt, mode, params):
    img = _quadrant_image("RGB" if mode == "P" else mode, where=(1, 0))
    if mode == "P":
        img = img.convert("P")
    path = tmp_path / f"in.{fmt.lower()}"
    img.save(path, fmt, dpi=(100, 100), **params)
    (page,) = render_document(path)
    assert (page.width, page.height, page.xres, page.yres) == (1728, 2292, 204, 196)
    q = _quadrants(page, A4, img.size)
    assert q[0, 1] > 0.98 and q[0, 0] < 0.01 and q[1, 0] < 0.01 and q[1, 1] < 0.01


def test_transparent_png_is_white_underneath(tmp_path):
    img = Image.new("RGBA", (600, 800), (0, 0, 0, 0))
    img.paste((0, 0, 0, 255), (0, 400, 300, 800))
    img.save(tmp_path / "a.png")
    (page,) = render_document(tmp_path / "a.png")
    q = _quadrants(page, A4, img.size)
    assert q[1, 0] > 0.98 and q[0, 0] < 0.01 and q[0, 1] < 0.01


def test_multi_page_tiff_of_mixed_compressions(tmp_path):
    first = _quadrant_image("RGB", where=(0, 0))
    second = _quadrant_image("1", where=(1, 1))
    path = tmp_path / "mixed.tif"
    first.save(
        path, "TIFF", compression="tiff_lzw", dpi=(100, 100), save_all=True, append_images=[second]
    )
    # Pillow writes the appended page with the first one's compression: redo it as G4.
    second.save(tmp_path / "g4.tif", "TIFF", compression="group4", dpi=(100, 100))
    pages = render_document(path)
    assert len(pages) == 2
    assert _quadrants(pages[0], A4, first.size)[0, 0] > 0.98
    assert _quadrants(pages[1], A4, second.size)[1, 1] > 0.98
    (g4,) = render_document(tmp_path / "g4.tif")
    assert g4 == pages[1]


def test_image_dpi_sets_the_aspect(tmp_path):
    # 400 x 400 pixels at 200 x 100 dpi is 2 in wide, 4 in tall: a tall rectangle.
    Image.new("L", (400, 400), 0).save(tmp_path / "tall.png", dpi=(200, 100))
    (page,) = render_document(tmp_path / "tall.png")
    rows, cols = np.nonzero(page.to_array())
    height_in = (rows.max() - rows.min() + 1) / page.yres
    width_in = (cols.max() - cols.min() + 1) / page.xres
    assert abs(height_in / width_in - 2) < 0.02


def test_pdf_pages_and_landscape_rotation(tmp_path):
    pdf = tmp_path / "land.pdf"
    make_pdf(pdf, [[Line("WIDE PAGE TOP LEFT", 40)]], size=(841.89, 595.28))
    (page,) = render_document(pdf)
    assert (page.width, page.height) == (1728, 2292)
    rows, cols = np.nonzero(page.to_array())
    # Turned a quarter clockwise: the top-left text runs down the right-hand side.
    assert cols.mean() > page.width * 0.75
    assert rows.max() - rows.min() > 4 * (cols.max() - cols.min())


def test_pdf_drawn_in_bands_is_the_whole_page_thresholded(tmp_path, monkeypatch):
    """Text mode draws a PDF page a band of rows at a time; the page is the one drawn
    whole and thresholded: text, anti-aliased paths, images, a landscape page."""
    from fastfax.document.render import PdfSource, binarize

    rng = np.random.default_rng(3)
    images = []
    for rotate in (False, True):
        img = Image.fromarray((rng.random((700, 500)) * 255).astype(np.uint8)).convert("RGB")
        ImageDraw.Draw(img).ellipse((40, 60, 460, 640), outline=(0, 0, 0), width=5)
        images.append(img.rotate(90, expand=True) if rotate else img)
    pictures = tmp_path / "pictures.pdf"
    images[0].save(pictures, save_all=True, append_images=images[1:], resolution=72)
    text = _text_pdf(tmp_path / "text.pdf", pages=1)
    wide = _text_pdf(tmp_path / "wide.pdf", pages=1, size=(841.89, 595.28))
    monkeypatch.setattr(PdfSource, "BAND_BYTES", 37 * 1728)  # 37-row bands, the last short
    for path in (text, wide, str(pictures)):
        src = open_source(path, A4)
        for index in range(src.pages):
            banded = src.render(index, A4, "text", 150)
            bands = src.bands(index, A4, "text", whole=True)
            grey, place, _ = next(bands)
            whole = binarize(grey, A4, place.x, place.y, place.width, place.height, "text", 150)
            bands.close()
            assert banded == whole[0]
            assert 0 < np.mean(banded.to_array()) < 0.9  # neither blank nor black
        src.close()


@pytest.mark.parametrize("size", ["a4", "letter", "legal", "b4", "a3"])
@pytest.mark.parametrize("resolution", ["standard", "fine", "superfine", "ultrafine", "300", "400"])
def test_output_dimensions_for_every_size_and_resolution(tmp_path, size, resolution):
    pdf = _text_pdf(tmp_path / "d.pdf", pages=1)
    options = Options(page_size=size, resolution=resolution)
    (result,) = convert([(pdf, tmp_path / "d.tif")], options, processes=1)
    assert result.ok, result.error
    (page,) = tiff.read(tmp_path / "d.tif")
    layout = options.layout()
    assert (page.width, page.height, page.xres, page.yres) == (
        layout.width,
        layout.height,
        layout.xres,
        layout.yres,
    )
    assert page.black_pixels() > 0


def test_text_input_pages_form_feeds_and_wrapping(tmp_path):
    lines = [f"line {n:03d} " + "word " * 30 for n in range(70)]  # each wraps once
    path = tmp_path / "a.txt"
    path.write_text("\n".join(lines[:10]) + "\f" + "\n".join(lines) + "\f", encoding="utf-8")
    src = open_source(path, A4)
    # 10 wrapped lines -> 20 rows: one page; 70 -> 140 rows over 60-row pages: 3 pages.
    assert src.kind == "text" and src.pages == 4
    pages = render_document(path)
    assert len(pages) == 4 and all(p.black_pixels() > 0 for p in pages)


def test_text_is_legible(tmp_path):
    words = "invoice delivery quantity warehouse telephone morning confirm quarter".split()
    path = tmp_path / "t.txt"
    path.write_text("\n".join(" ".join(words[n:] + words[:n]) for n in range(8)))
    (page,) = render_document(path)
    page.to_image().save(tmp_path / "t.png")
    out = (
        subprocess.run(
            ["tesseract", str(tmp_path / "t.png"), "-", "--psm", "6"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.lower()
        .split()
    )
    found = sum(min(out.count(w), 8) for w in words)
    assert found >= 0.95 * 64


def test_header_changes_only_the_top_band(tmp_path):
    pdf = _text_pdf(tmp_path / "h.pdf", pages=2)
    plain = render_document(pdf)
    headed = render_document(pdf, Options(header="{sender}\tPage {page} of {pages}", sender="ACME"))
    band = round(4.5 / 25.4 * 196)
    for a, b in zip(plain, headed, strict=True):
        assert a.to_array()[band:].tolist() == b.to_array()[band:].tolist()
        assert b.to_array()[:band].sum() > 100
    assert headed[0].to_array()[:band].tolist() != headed[1].to_array()[:band].tolist()


def test_cover_page_is_first_and_legible(tmp_path):
    from fastfax.document.cover import CoverInfo

    pdf = _text_pdf(tmp_path / "c.pdf", pages=2)
    info = CoverInfo(recipient_name="Margaret Hamilton", subject="Apollo guidance listing")
    pages = render_document(pdf, Options(cover=info))
    assert len(pages) == 3
    pages[0].to_image().save(tmp_path / "cover.png")
    text = subprocess.run(
        ["tesseract", str(tmp_path / "cover.png"), "-"], capture_output=True, text=True, check=True
    ).stdout
    for word in ("Margaret", "Hamilton", "Apollo", "guidance", "3 pages"):
        assert word in text


@pytest.mark.parametrize(
    "compression,name",
    [("g4", "CCITT Group 4"), ("g3", "CCITT Group 3"), ("g3-2d", "CCITT Group 3")],
)
def test_tiff_output_read_by_libtiff(tmp_path, compression, name):
    pdf = _text_pdf(tmp_path / "t.pdf", pages=3)
    pages = render_document(pdf)
    save(pages, tmp_path / "out.tif", compression=compression)
    info = subprocess.run(
        ["tiffinfo", str(tmp_path / "out.tif")], capture_output=True, text=True, check=True
    ).stdout
    assert info.count(f"Compression Scheme: {name}") == 3
    with Image.open(tmp_path / "out.tif") as img:
        for n, page in enumerate(pages):
            img.seek(n)
            assert np.array_equal(~np.asarray(img.convert("1")).astype(bool), page.to_array())


def test_pdf_output_embeds_g4_and_renders_back(tmp_path):
    pdf = _text_pdf(tmp_path / "p.pdf", pages=2)
    pages = render_document(pdf, Options(resolution="standard"))
    save(pages, tmp_path / "out.pdf")
    data = (tmp_path / "out.pdf").read_bytes()
    for page in pages:
        assert codec.encode(page, "mmr") in data  # the G4 data as is
    doc = pdfium.PdfDocument(str(tmp_path / "out.pdf"))
    assert len(doc) == 2
    for n, page in enumerate(pages):
        w, h = doc[n].get_size()
        assert abs(w - page.width / 204 * 72) < 0.01 and abs(h - page.height / 98 * 72) < 0.01
        grey = np.full((page.height, page.width), 255, np.uint8)
        bitmap = pdfium.raw.FPDFBitmap_CreateEx(
            page.width,
            page.height,
            pdfium.raw.FPDFBitmap_Gray,
            grey.ctypes.data_as(ctypes.c_void_p),
            page.width,
        )
        pdf_page = doc[n]  # keep the page object alive while PDFium draws it
        pdfium.raw.FPDF_RenderPageBitmap(bitmap, pdf_page.raw, 0, 0, page.width, page.height, 0, 0)
        pdf_page.close()
        pdfium.raw.FPDFBitmap_Destroy(bitmap)
        assert ((grey < 128) == page.to_array()).mean() > 0.999
    doc.close()
    gs = subprocess.run(
        ["gs", "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=bbox", str(tmp_path / "out.pdf")],
        capture_output=True,
        text=True,
    )
    assert gs.returncode == 0 and gs.stderr.count("%%BoundingBox") == 2


def test_png_and_pbm_outputs(tmp_path):
    pdf = _text_pdf(tmp_path / "p.pdf", pages=3)
    pages = render_document(pdf)
    written = save(pages, tmp_path / "out.png")
    assert [os.path.basename(p) for p in written] == ["out-001.png", "out-002.png", "out-003.png"]
    for path, page in zip(written, pages, strict=True):
        with Image.open(path) as img:
            assert img.mode == "1"
            assert np.array_equal(~np.asarray(img).astype(bool), page.to_array())
    save(pages, tmp_path / "out.pbm")
    raw = (tmp_path / "out.pbm").read_bytes()
    assert raw.count(b"P4\n1728 2292\n") == 3
    with Image.open(tmp_path / "out.pbm") as img:
        assert np.array_equal(~np.asarray(img).astype(bool), pages[0].to_array())


def test_received_fax_tiff_to_pdf_keeps_pages_as_they_are(tmp_path):
    rng = np.random.default_rng(1)
    pages = [Page.from_array(rng.random((1143, 1728)) < 0.02, 204, 98) for _ in range(2)]
    tiff.write(tmp_path / "rx.tif", pages)
    results = convert(
        [(tmp_path / "rx.tif", tmp_path / "rx.pdf"), (tmp_path / "rx.tif", tmp_path / "rx.png")],
        processes=1,
    )
    assert all(r.ok for r in results) and results[0].pages == 2
    doc = pdfium.PdfDocument(str(tmp_path / "rx.pdf"))
    assert abs(doc[0].get_size()[1] - 1143 / 98 * 72) < 0.01
    doc.close()
    with Image.open(results[1].outputs[1]) as img:  # standard rows shown twice: square pixels
        assert img.size == (1728, 2 * 1143)
        assert np.array_equal(~np.asarray(img).astype(bool), np.repeat(pages[1].to_array(), 2, 0))
        assert [round(d) for d in img.info["dpi"]] == [204, 196]


def test_png_of_superfine_and_square_pages_has_square_pixels(tmp_path):
    rng = np.random.default_rng(2)
    superfine = Page.from_array(rng.random((40, 64)) < 0.3, 204, 391)
    square = Page.from_array(rng.random((40, 64)) < 0.3, 300, 300)
    (a,) = save([superfine], tmp_path / "sf.png")
    (b,) = save([square], tmp_path / "sq.png")
    with Image.open(a) as img:
        assert img.size == (128, 40)
        assert np.array_equal(~np.asarray(img).astype(bool), np.repeat(superfine.to_array(), 2, 1))
    with Image.open(b) as img:
        assert np.array_equal(~np.asarray(img).astype(bool), square.to_array())


def _encrypted_pdf(tmp_path):
    plain = _text_pdf(tmp_path / "plain.pdf", pages=1)
    out = tmp_path / "locked.pdf"
    subprocess.run(
        [
            "gs",
            "-q",
            "-dNOPAUSE",
            "-dBATCH",
            "-dSAFER",
            "-sDEVICE=pdfwrite",
            "-sOwnerPassword=owner",
            "-sUserPassword=secret",
            f"-sOutputFile={out}",
            plain,
        ],
        check=True,
    )
    return out


def test_bad_inputs_raise_convert_errors_naming_the_file(tmp_path):
    (tmp_path / "empty.pdf").write_bytes(b"")
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "cut.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog")
    make_pdf(tmp_path / "blank.pdf", [])  # a whole PDF without a page
    png = tmp_path / "cut.png"
    _quadrant_image().save(png)
    png.write_bytes(png.read_bytes()[:300])
    cases = {
        "missing.pdf": "cannot read the file",
        "empty.pdf": "empty",
        "junk.bin": "unknown file type",
        "cut.pdf": "cannot open the PDF: not a PDF, or a damaged one",
        "blank.pdf": "the PDF has no pages",
        "cut.png": "image",
    }
    for name, message in cases.items():
        with pytest.raises(ConvertError, match=message) as info:
            render_document(tmp_path / name)
        assert name in str(info.value) and info.value.path == str(tmp_path / name)
    locked = _encrypted_pdf(tmp_path)
    with pytest.raises(ConvertError, match="encrypted"):
        render_document(locked)
    with pytest.raises(ConvertError, match="wrong"):
        render_document(locked, Options(password="guess"))
    assert len(render_document(locked, Options(password="secret"))) == 1


def test_batch_goes_on_past_bad_files_and_leaves_no_partial_output(tmp_path):
    good = _text_pdf(tmp_path / "good.pdf", pages=5)
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7\ngarbage")
    out = tmp_path / "out"
    out.mkdir()
    pairs = [(good, out / "a.tif"), (tmp_path / "bad.pdf", out / "b.tif"), (good, out / "c.pdf")]
    for jobs in (1, 2):
        results = convert(pairs, processes=jobs)
        assert [r.ok for r in results] == [True, False, True]
        assert "bad.pdf" in str(results[1].error)
        assert sorted(os.listdir(out)) == ["a.tif", "c.pdf"]  # no temporary files left
        assert len(tiff.read(out / "a.tif")) == 5
        for name in os.listdir(out):
            os.unlink(out / name)


@pytest.mark.parametrize("jobs", [1, 2])
def test_damaged_image_in_a_batch_fails_alone(tmp_path, jobs):
    """A worker's parent counts an image's pages from its header only; damaged pixel data
    fails when the page is rendered, naming the file, and the rest is written."""
    good = tmp_path / "good.png"
    _quadrant_image().save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:600])
    pairs = [(cut, tmp_path / "cut.tif"), (good, tmp_path / "good.tif")]
    results = convert(pairs, processes=jobs)
    assert isinstance(results[0].error, ConvertError) and "cut.png" in str(results[0].error)
    assert "image" in str(results[0].error)
    assert results[1].ok and len(tiff.read(tmp_path / "good.tif")) == 1
    assert sorted(os.listdir(tmp_path)) == ["cut.png", "good.png", "good.tif"]


def test_processes_give_the_same_bytes_as_one(tmp_path):
    pdf = tmp_path / "long.pdf"
    make_pdf(pdf, [[Line(f"page {n} " * 8, 12)] for n in range(20)])
    options = Options(header="{page}/{pages}")
    one = convert([(pdf, tmp_path / "one.tif")], options, processes=1)
    two = convert([(pdf, tmp_path / "two.tif")], options, processes=2)
    assert one[0].ok and two[0].ok
    assert (tmp_path / "one.tif").read_bytes() == (tmp_path / "two.tif").read_bytes()


@pytest.mark.parametrize("jobs", [1, 2])
def test_g4_tiff_and_pdf_are_written_from_pages_coded_once(tmp_path, monkeypatch, jobs):
    """Pages for G4 TIFF and PDF are T.6 coded where they are rendered and written as they
    are: the files are those of the pixel pages, and the writer codes nothing."""
    pdf = _text_pdf(tmp_path / "p.pdf", pages=5)
    pages = render_document(pdf)
    save(pages, tmp_path / "ref.tif")
    save(pages, tmp_path / "ref.pdf", title="p.pdf")
    save(pages, tmp_path / "ref.pbm")

    def no_coding(*args, **kwargs):
        raise AssertionError("the TIFF writer coded a page")

    monkeypatch.setattr(tiff, "encode", no_coding)
    targets = [(pdf, tmp_path / f"out.{ext}") for ext in ("tif", "pdf", "pbm")]
    results = convert(targets, processes=jobs)
    assert [r.error for r in results] == [None, None, None]
    for ext in ("tif", "pdf", "pbm"):
        assert (tmp_path / f"out.{ext}").read_bytes() == (tmp_path / f"ref.{ext}").read_bytes()


@pytest.mark.parametrize("jobs", [1, 2])
def test_cover_page_goes_first_among_coded_pages(tmp_path, jobs):
    import datetime

    from fastfax.document.cover import CoverInfo

    pdf = _text_pdf(tmp_path / "p.pdf", pages=3)
    options = Options(
        cover=CoverInfo(recipient_name="Ada"),
        header="{page}/{pages}",
        when=datetime.datetime(2024, 5, 6, 7, 8, 9),
    )
    save(render_document(pdf, options), tmp_path / "ref.tif")
    (result,) = convert([(pdf, tmp_path / "out.tif")], options, processes=jobs)
    assert result.ok and result.pages == 4
    assert (tmp_path / "out.tif").read_bytes() == (tmp_path / "ref.tif").read_bytes()


def test_a_worker_that_dies_fails_its_document_and_the_batch_goes_on(tmp_path, monkeypatch):
    """A worker killed mid-page (a crash in PDFium, say) fails the documents it held;
    a new worker takes its place and the rest of the batch is rendered."""
    from fastfax.document import convert as convert_module

    source = convert_module._source

    def crash_on_doomed(path, *args):
        if "doomed" in path:
            os._exit(3)  # the forked worker dies as a crash would kill it
        return source(path, *args)

    monkeypatch.setattr(convert_module, "_source", crash_on_doomed)
    good = _text_pdf(tmp_path / "good.pdf", pages=4)
    doomed = _text_pdf(tmp_path / "doomed.pdf", pages=3)
    pairs = [(doomed, tmp_path / "d.tif")] + [(good, tmp_path / f"g{i}.tif") for i in range(4)]
    results = convert(pairs, processes=2)
    assert not results[0].ok and "worker process died" in str(results[0].error)
    assert not (tmp_path / "d.tif").exists()
    finished = [r for r in results[1:] if r.ok]
    assert len(finished) >= 3  # at most the one document in flight beside it fails too
    for r in results[1:]:
        if r.ok:
            assert len(tiff.read(r.target)) == 4
        else:
            assert "worker process died" in str(r.error)


def test_progress_reports_every_page(tmp_path):
    pdf = _text_pdf(tmp_path / "p.pdf", pages=12)
    seen = []
    convert([(pdf, tmp_path / "p.tif")], processes=2, progress=lambda d, k: seen.append((d, k)))
    assert seen[-1] == (12, 12) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_unknown_output_format_and_options(tmp_path):
    pdf = _text_pdf(tmp_path / "p.pdf", pages=1)
    (result,) = convert([(pdf, tmp_path / "x.doc")], processes=1)
    assert isinstance(result.error, ConvertError) and "format" in str(result.error)
    with pytest.raises(ConvertError, match="mode"):
        convert([(pdf, tmp_path / "x.tif")], Options(mode="sketch"))
    with pytest.raises(ConvertError, match="header template"):
        convert([(pdf, tmp_path / "x.tif")], Options(header="{pgae}"))
    with pytest.raises(ConvertError, match="compression"):
        save(render_document(pdf), tmp_path / "x.tif", compression="jbig")


def test_tiffsplit_splits_our_tiff(tmp_path):
    pdf = _text_pdf(tmp_path / "p.pdf", pages=2)
    save(render_document(pdf), tmp_path / "o.tif")
    # tiffsplit (libtiff) splits it into two valid single-page files.
    subprocess.run(["tiffsplit", str(tmp_path / "o.tif"), str(tmp_path / "part-")], check=True)
    assert sorted(p.name for p in tmp_path.glob("part-*")) == ["part-aaa.tif", "part-aab.tif"]

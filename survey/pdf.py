"""PDFs printed from HTML by headless Chromium: the one printer the questionnaire and the
site report share.

Chromium runs offline (every host name resolves to nothing, so a page cannot reach the
network even by accident) with a private profile folder (another Chromium on the
machine, a person's browser or the dashboard tests, must not share or lock ours). The
PDF is printed beside its destination and renamed into place only when it is a PDF, and
any older PDF at the destination is removed first, so a stale file never passes for a
fresh one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from survey.errors import CultureError

#: Names of a Chromium (or Chrome) binary on PATH, in the order they are tried.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Seconds Chromium may take to print; a first start on a cold machine takes a few.
PDF_TIMEOUT_SECONDS = 120


class PdfError(CultureError):
    """A PDF cannot be printed: no Chromium, or Chromium failed or timed out."""


def find_chromium(instead: str) -> str:
    """The path of a Chromium (or Chrome) binary that can print PDFs headless.

    `instead` says what the caller can do without a PDF (e.g. "pass --no-pdf to write
    the HTML only"); it ends the error's message.
    """
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise PdfError(f"printing a PDF needs Chromium, and none was found (looked for "
                   f"{', '.join(CHROMIUM_NAMES)}); install it (Debian/Ubuntu: apt-get install "
                   f"chromium) or {instead}")


def print_pdf(html_path: Path, pdf_path: Path, instead: str) -> Path:
    """`pdf_path`, printed from the HTML file `html_path` by headless Chromium (A4, offline).

    `instead` says what the caller can do without a PDF; it ends every error's message.
    """
    binary = find_chromium(instead)
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    pdf_path.unlink(missing_ok=True)
    tmp_pdf = pdf_path.with_name(pdf_path.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="culture-chromium-") as profile:
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                   "--disable-background-networking", "--host-resolver-rules=MAP * ~NOTFOUND",
                   f"--user-data-dir={profile}", "--no-pdf-header-footer",
                   "--print-to-pdf-no-header", f"--print-to-pdf={tmp_pdf}",
                   html_path.as_uri()]
        try:
            run = subprocess.run(command, capture_output=True, text=True,
                                 timeout=PDF_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            tmp_pdf.unlink(missing_ok=True)
            raise PdfError(f"Chromium did not print {html_path} within {PDF_TIMEOUT_SECONDS} s; "
                           f"try again, or {instead}") from None
    if run.returncode != 0 or not _is_pdf(tmp_pdf):
        tmp_pdf.unlink(missing_ok=True)
        tail = " ".join((run.stderr or "").strip().splitlines()[-3:]) or "no message"
        raise PdfError(f"Chromium could not print {html_path} to PDF (exit code "
                       f"{run.returncode}: {tail}); {instead}")
    os.replace(tmp_pdf, pdf_path)
    return pdf_path


def _is_pdf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(5) == b"%PDF-"
    except FileNotFoundError:
        return False

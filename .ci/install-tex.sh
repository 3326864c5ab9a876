#!/usr/bin/env bash
# TeX for the paper tests (marker `tex`): the minimal Debian/Ubuntu packages that compile
# report/paper.tex (article, times/helvet/courier, natbib, caption, booktabs, amsmath, listings,
# color, graphicx, url: texlive-latex-base + -latex-recommended + -fonts-recommended), latexmk,
# and poppler-utils (pdftotext, pdfinfo) for the tests' checks. Nothing is done when all are there.
set -euo pipefail
PACKAGES=(texlive-latex-base texlive-latex-recommended texlive-fonts-recommended latexmk poppler-utils)
if command -v latexmk >/dev/null && command -v pdflatex >/dev/null && command -v pdftotext >/dev/null \
    && command -v pdfinfo >/dev/null && kpsewhich booktabs.sty listings.sty times.sty natbib.sty >/dev/null; then
    echo "install-tex: TeX and poppler already installed"
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
echo "install-tex: installed ${PACKAGES[*]}"

#!/usr/bin/env bash
# Downloads CIFAR-10 (binary version, 163 MB) from its official address, checks the archive's MD5 and extracts
# it, leaving DEST/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin, which `train_cifar10 --data DEST`
# reads. Does nothing when the files are already there.
# Usage: tools/get_cifar10.sh [DEST]   (default: data)
set -euo pipefail

dest=${1:-data}
url=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
md5=c32a1d4ab5d03f1284b67883e8d87530
archive=$dest/cifar-10-binary.tar.gz
folder=$dest/cifar-10-batches-bin

have_all() {
  for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
    [ -f "$folder/$f.bin" ] || return 1
  done
}
if have_all; then
  echo "CIFAR-10 is already in $folder"
  exit 0
fi

mkdir -p "$dest"
if ! { [ -f "$archive" ] && echo "$md5  $archive" | md5sum --check --status; }; then
  echo "Downloading $url"
  # Into a temporary name first, so an interrupted download never looks like a finished one.
  if command -v curl >/dev/null; then
    curl --fail --location --retry 3 --output "$archive.part" "$url"
  elif command -v wget >/dev/null; then
    wget --tries=3 --output-document="$archive.part" "$url"
  else
    echo "error: neither curl nor wget is installed (Debian/Ubuntu: sudo apt-get install curl)" >&2
    exit 1
  fi
  if ! echo "$md5  $archive.part" | md5sum --check --status; then
    echo "error: $url has MD5 $(md5sum < "$archive.part" | cut -d' ' -f1), expected $md5;" \
         "the download is damaged or not the CIFAR-10 archive (kept as $archive.part)" >&2
    exit 1
  fi
  mv "$archive.part" "$archive"
fi

tar -xzf "$archive" -C "$dest"
have_all || { echo "error: $archive did not contain the expected files in $folder" >&2; exit 1; }
rm -f "$archive"
echo "CIFAR-10 is in $folder"

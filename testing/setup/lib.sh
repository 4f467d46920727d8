# shellcheck shell=bash
# Only for testing/qemu-pi/build-image.sh, which sources "$here/../setup/lib.sh" (this file): the
# path it had before the harness moved out of tools/. The board image's cache key hashes
# build-image.sh's own bytes, so fixing that line would rebuild the image (~11 min); the next real
# change to build-image.sh should point it at ../../tools/setup/lib.sh and delete this folder.
# shellcheck source=SCRIPTDIR/../../tools/setup/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tools/setup/lib.sh"

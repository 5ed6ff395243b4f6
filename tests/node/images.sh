#!/usr/bin/env bash
# Builds the images the node runs, with buildah (Debian's; its own storage in the cache dir),
# and imports them into the node's containerd. No registry can be reached, so:
#   - the Dockerfile's base images are local stand-ins of the same content, built from this
#     machine's Debian packages and Rust toolchain and given through its build arguments:
#       RUST_IMAGE     Debian bookworm with gcc and libc6-dev, Rust $(rustc --version) in
#                      /usr/local/cargo and /usr/local/rustup (as the rust:1.95-bookworm image)
#       RUNTIME_IMAGE  glibc, libgcc, CA certificates, user nonroot 65532 (as distroless cc)
#   - everything else in the Dockerfile is built as written (the release build included).
# Usage: images.sh node   pause (the CRI sandbox) and CoreDNS (started by up.sh)
#        images.sh e2e    argomap (two tags), the fake Argo CD, and a curl image (helm test)
# Each image's reference goes to $node_state/images/NAME.ref.
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

what="${1:?usage: images.sh node|e2e}"
out="$node_state/images"
mkdir -p "$out" "$node_cache/buildah/tmp" "$node_state/buildah-run"
# Cache mounts (the Dockerfile's cargo registry and target dir) live under TMPDIR.
export TMPDIR="$node_cache/buildah/tmp"
bh() { buildah --root "$node_cache/buildah/storage" --runroot "$node_state/buildah-run" --storage-driver overlay "$@"; }
exec {lock_fd}>"$node_cache/buildah/.lock"
flock "$lock_fd"

# import REF NAME: push REF out of buildah's storage into the node's containerd.
import() {
  local tar="$out/$2.tar"
  bh push --quiet "$1" "docker-archive:$tar:$1" >/dev/null
  node_ctr images import --no-unpack=false "$tar" >/dev/null
  rm -f "$tar"
  echo "$1" >"$out/$2.ref"
  node_log "image $1 imported"
}

# rootfs DIR PKG...: the files of the installed Debian packages PKG and their dependencies
# (Depends and Pre-Depends, not Recommends) into DIR, merged-/usr like Debian bookworm.
rootfs() {
  local dir="$1" p
  shift
  mkdir -p "$dir"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,tmp,root}
  chmod 1777 "$dir/tmp"
  for l in bin sbin lib lib64; do ln -sfn "usr/$l" "$dir/$l"; done
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$@" 2>/dev/null | grep -v '^[ <]' | sort -u |
    while read -r p; do
      if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ]; then dpkg -L "$p"; fi
    done | grep -vE '^/usr/share/(doc|man|info|locale|lintian)/' | sort -u |
    while read -r f; do
      if { [ -f "$f" ] || [ -L "$f" ]; } && [ ! -d "$f" ]; then echo "${f#/}"; fi
    done >"$dir.files"
  tar -C / --no-recursion -cf - -T "$dir.files" | tar -C "$dir" --keep-directory-symlink -xf -
  rm -f "$dir.files"
  mkdir -p "$dir/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"
}

# base REF DIR [buildah config options...]: an image from scratch with DIR's files.
base() {
  local ref="$1" dir="$2" ctr
  shift 2
  ctr="$(bh from --quiet scratch)"
  bh copy --quiet "$ctr" "$dir" / >/dev/null
  bh config "$@" "$ctr"
  bh commit --quiet --rm "$ctr" "$ref" >/dev/null
}
has() { bh inspect --type image "$1" >/dev/null 2>&1; }

work="$(mktemp -d "$node_cache/buildah/tmp/work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

node_images() {
  local bin ref
  bin="$(bash "$node_here/build.sh" | tail -n1)"
  # The pause image under the name containerd's sandbox_image gives (it is never pulled).
  ref=registry.k8s.io/pause:3.10
  mkdir -p "$work/pause"
  cp "$(ls "$bin"/pause-* | head -n1)" "$work/pause/pause"
  has "$ref" || base "$ref" "$work/pause" --entrypoint '["/pause"]' --user 65535:65535
  import "$ref" pause
  ref="localhost/argomap-node/coredns:$(basename "$(dirname "$bin")" | sed 's/.*coredns-//')"
  mkdir -p "$work/coredns"
  cp "$bin/coredns" "$work/coredns/coredns"
  has "$ref" || base "$ref" "$work/coredns" --entrypoint '["/coredns"]' --user 65532:65532
  import "$ref" coredns
}

e2e_images() {
  local sysroot toolchain rust runtime curl rev tag
  sysroot="$(rustc --print sysroot)"
  toolchain="$(basename "$sysroot")"
  rust="localhost/argomap-standin/rust:$(rustc --version | cut -d" " -f2)-bookworm"
  if ! has "$rust"; then
    node_log "building the Rust stand-in ($toolchain, gcc, libc6-dev)"
    rootfs "$work/rust" gcc libc6-dev dash bash coreutils
    ln -sfn gcc "$work/rust/usr/bin/cc"
    mkdir -p "$work/rust/usr/local/rustup/toolchains/$toolchain" "$work/rust/usr/local/cargo/bin"
    cp -a "$sysroot/bin" "$sysroot/lib" "$work/rust/usr/local/rustup/toolchains/$toolchain/"
    for b in cargo rustc rustdoc; do ln -s "../../rustup/toolchains/$toolchain/bin/$b" "$work/rust/usr/local/cargo/bin/$b"; done
    base "$rust" "$work/rust" --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
      --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env HOME=/root --cmd '["bash"]'
    rm -rf "$work/rust"
  fi
  runtime="localhost/argomap-standin/cc-debian12:nonroot"
  if ! has "$runtime"; then
    rootfs "$work/cc" libc6 libgcc-s1
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$work/cc/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$work/cc/etc/group"
    mkdir -p "$work/cc/home/nonroot" && chown 65532:65532 "$work/cc/home/nonroot"
    base "$runtime" "$work/cc" --user 65532:65532 --workingdir /home/nonroot \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
    rm -rf "$work/cc"
  fi
  # The helm test's image (curlimages/curl by default: Alpine's curl with busybox): Debian's
  # curl with busybox, whose `sh` the tests' client pods run.
  curl="localhost/argomap-standin/curl:$(dpkg-query -W -f='${Version}' curl | sed 's/[^A-Za-z0-9_.-]/_/g')"
  if ! has "$curl"; then
    rootfs "$work/curl" curl busybox-static
    ln -sfn busybox "$work/curl/usr/bin/sh"
    base "$curl" "$work/curl" --entrypoint '["curl"]' --user 100:101
    rm -rf "$work/curl"
  fi
  import "$curl" curl

  rev="$(git -C "$node_root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  tag="e2e-$rev"
  node_log "building argomap from the Dockerfile"
  bh bud --quiet --isolation chroot --layers=false -f "$node_root/Dockerfile" \
    --build-arg RUST_IMAGE="$rust" --build-arg RUNTIME_IMAGE="$runtime" \
    --build-arg REVISION="$rev" -t "localhost/argomap:$tag" "$node_root" >&2
  import "localhost/argomap:$tag" argomap
  # A second tag of the same image: `helm upgrade` to it rolls the pods.
  bh tag "localhost/argomap:$tag" "localhost/argomap:$tag-next"
  import "localhost/argomap:$tag-next" argomap-next
  node_log "building the fake Argo CD from tests/fake-argocd/Dockerfile"
  bh bud --quiet --isolation chroot --layers=false -f "$node_root/tests/fake-argocd/Dockerfile" \
    --build-arg RUST_IMAGE="$rust" --build-arg RUNTIME_IMAGE="$runtime" \
    -t "localhost/argomap-fake-argocd:$tag" "$node_root" >&2
  import "localhost/argomap-fake-argocd:$tag" fake-argocd
  # Only the stand-ins stay in buildah's storage (what was built is in containerd now).
  bh rmi "localhost/argomap:$tag" "localhost/argomap:$tag-next" "localhost/argomap-fake-argocd:$tag" >/dev/null 2>&1 || true
  bh rmi --prune >/dev/null 2>&1 || true
}

case "$what" in
  node) node_images ;;
  e2e) e2e_images ;;
  *) echo "usage: images.sh node|e2e" >&2; exit 2 ;;
esac

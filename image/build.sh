#!/usr/bin/env bash
# Builds the firmware image into build/: vmlinux (PVH-bootable ELF), initramfs.cpio.zst (production),
# initramfs-test.cpio.zst (the same with the QEMU tests' console agent), image.json.
# Incremental: the kernel .deb is fetched and unpacked only when versions.env changes; the Go init is rebuilt
# by go's cache; the initramfs is repacked when any input is newer than it.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
. image/versions.env
out=$top/build
kdir=$out/kernel
mkdir -p "$out" "$kdir"

die() { echo "image: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "missing tool '$1' (run 'make deps' as root on Debian 12)"; }
for t in apt-get dpkg-deb depmod xz zstd cpio objcopy objdump sfdisk mformat go; do need "$t"; done
[ -x /usr/lib/postgresql/$PG_MAJOR/bin/postgres ] || die "PostgreSQL $PG_MAJOR server missing on the build host (apt-get install postgresql-$PG_MAJOR)"
[ -x /sbin/lvm ] || die "LVM's lvm missing on the build host (apt-get install lvm2)"
[ -x /usr/sbin/cryptsetup ] || die "cryptsetup missing on the build host (apt-get install cryptsetup-bin)"
[ -x /usr/sbin/smbd ] || die "Samba's smbd missing on the build host (apt-get install samba)"

# fetch DEB VERSION SHA256: download a pinned .deb into build/debs and check its digest.
fetch() {
  local pkg=$1 ver=$2 sum=$3 f
  mkdir -p "$out/debs"
  f=$(ls "$out/debs/${pkg}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$f" ]; then
    (cd "$out/debs" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) ||
      die "cannot download $pkg=$ver with apt-get (is the Debian mirror reachable, 'apt-get update' run, and the version still in the archive?)"
    f=$(ls "$out/debs/${pkg}_${ver//:/%3a}_"*.deb | head -n1)
  fi
  echo "$sum  $f" | sha256sum -c --quiet - >/dev/null 2>&1 || { rm -f "$f"; die "$pkg $ver: sha256 mismatch, refusing it"; }
  echo "$f"
}

# 1. Kernel: only when the pin changed.
stamp=$kdir/.stamp-$KERNEL_RELEASE-$KERNEL_DEB_VERSION
if [ ! -f "$stamp" ] || [ image/modules.txt -nt "$stamp" ]; then
  deb=$(fetch "$KERNEL_PKG" "$KERNEL_DEB_VERSION" "$KERNEL_SHA256")
  rm -rf "$kdir" && mkdir -p "$kdir"
  dpkg-deb -x "$deb" "$kdir/full"
  bz=$kdir/full/boot/vmlinuz-$KERNEL_RELEASE
  cp "$bz" "$kdir/bzImage"
  # The bzImage carries an xz-compressed ELF: find the xz magic and decompress it (as scripts/extract-vmlinux).
  off=$(grep -abo $'\xfd7zXZ\x00' "$bz" | head -n1 | cut -d: -f1)
  [ -n "$off" ] || die "no xz payload in $bz"
  tail -c +$((off + 1)) "$bz" | xz -dcq --single-stream > "$kdir/vmlinux" 2>/dev/null || true
  head -c 4 "$kdir/vmlinux" | grep -q $'\x7fELF' || die "could not extract vmlinux from $bz"
  # Stage the listed modules plus their dependencies, then depmod the staged tree.
  depmod -b "$kdir/full" "$KERNEL_RELEASE"
  mroot=$kdir/full/lib/modules/$KERNEL_RELEASE
  stage=$kdir/modules/lib/modules/$KERNEL_RELEASE
  mkdir -p "$stage"
  cp "$mroot"/modules.builtin "$mroot"/modules.builtin.modinfo "$mroot"/modules.order "$stage"/
  grep -v '^#' image/modules.txt | while read -r m _; do # the name; its parameters are for the loader
    [ -n "$m" ] || continue
    line=$(grep -E "/${m//[-_]/[-_]}\.ko(\.xz)?:" "$mroot/modules.dep") || die "module $m not in $KERNEL_PKG"
    for rel in ${line/:/}; do mkdir -p "$stage/$(dirname "$rel")"; cp -n "$mroot/$rel" "$stage/$rel"; done
  done
  depmod -b "$kdir/modules" "$KERNEL_RELEASE"
  rm -rf "$kdir/full"
  touch "$stamp"
fi

# 2. mdadm, pinned.
if [ ! -x "$out/mdadm/sbin/mdadm" ]; then
  deb=$(fetch mdadm "$MDADM_DEB_VERSION" "$MDADM_SHA256")
  rm -rf "$out/mdadm" && dpkg-deb -x "$deb" "$out/mdadm"
fi

# 2b. systemd-boot and the EFI stub, pinned.
if [ ! -f "$out/sdboot/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ]; then
  deb=$(fetch systemd-boot-efi "$SDBOOT_DEB_VERSION" "$SDBOOT_SHA256")
  rm -rf "$out/sdboot" && dpkg-deb -x "$deb" "$out/sdboot"
fi
efi=$out/sdboot/usr/lib/systemd/boot/efi

# 2c. drbd-utils, pinned: the 8.4 drbdsetup (the kernel's module is DRBD 8.4) and drbdmeta.
if [ ! -x "$out/drbd/sbin/drbdmeta" ]; then
  deb=$(fetch drbd-utils "$DRBD_DEB_VERSION" "$DRBD_SHA256")
  rm -rf "$out/drbd" && dpkg-deb -x "$deb" "$out/drbd"
fi

# 3. The Go init (one multi-call binary: PID 1 and the appliance daemons), and the same with the QEMU
#    tests' serial-console agent (tag lawboxtest): production firmware never carries it.
version=$(git describe --always --dirty 2>/dev/null || echo dev)
buildno=$(git rev-list --count HEAD 2>/dev/null || echo 1) # rises with every commit: what "older" means for an update
# The key update bundles are signed with: LAWBOX_SIGNING_KEY (a vendor's, see image/README.md) or a
# development key generated into build/ (never committed). Its public half is built into the firmware.
signkey=${LAWBOX_SIGNING_KEY:-$out/signing.key}
go run ./cmd/bundle keygen -key "$signkey" -pub "$out/signing.pub"
updatekey=$(tail -n1 "$out/signing.pub")
ldflags="-s -w -X main.version=$version -X main.build=$buildno -X main.updateKey=$updatekey"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/appliance" ./cmd/appliance
mkdir -p "$out/test-overlay/bin"
CGO_ENABLED=0 go build -trimpath -tags lawboxtest -ldflags "$ldflags -X main.version=$version-test" \
  -o "$out/test-overlay/bin/appliance" ./cmd/appliance

# 4. The initramfs, packed by u-root (no Go commands of its own: it only packs files and their libraries).
pgbin=/usr/lib/postgresql/$PG_MAJOR/bin
pglib=/usr/lib/postgresql/$PG_MAJOR/lib
pgshare=/usr/share/postgresql/$PG_MAJOR
files=(
  -files "$out/mdadm/sbin/mdadm:sbin/mdadm"
  -files "/sbin/lvm:sbin/lvm" # the volumes on the data array (the libraries come with it)
  -files "/usr/sbin/cryptsetup:sbin/cryptsetup" # the data array's encryption (LUKS2)
  -files "$out/drbd/lib/drbd/drbdsetup-84:sbin/drbdsetup" # the documents' replication
  -files "$out/drbd/sbin/drbdmeta:sbin/drbdmeta"
  -files "/usr/sbin/smbd:usr/sbin/smbd" # the file shares, with the RPC helpers that list them and name accounts:
  -files "/usr/libexec/samba/samba-dcerpcd:usr/libexec/samba/samba-dcerpcd"
  -files "/usr/libexec/samba/rpcd_classic:usr/libexec/samba/rpcd_classic"
  -files "/usr/libexec/samba/rpcd_epmapper:usr/libexec/samba/rpcd_epmapper"
  -files "/usr/libexec/samba/rpcd_lsad:usr/libexec/samba/rpcd_lsad"
  -files "/usr/libexec/samba/rpcd_winreg:usr/libexec/samba/rpcd_winreg"
  -files "/usr/lib/x86_64-linux-gnu/gconv/UTF-16.so:usr/lib/x86_64-linux-gnu/gconv/UTF-16.so"
  -files "/bin/dash:bin/sh"
  -files "/sbin/mke2fs:sbin/mkfs.ext4"
  -files "/sbin/e2fsck:sbin/e2fsck"
  -files "/sbin/resize2fs:sbin/resize2fs" # grows /data online after the array or its volume grew
  -files "/usr/sbin/smartctl:sbin/smartctl"
  -files "/usr/bin/mtools:bin/mtools" # with the code page its iconv needs for FAT names:
  -files "/usr/lib/x86_64-linux-gnu/gconv/IBM850.so:usr/lib/x86_64-linux-gnu/gconv/IBM850.so"
  -files "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache:usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache"
  -files "$efi/systemd-bootx64.efi:lib/lawbox/systemd-bootx64.efi"
  -files "/etc/mke2fs.conf:etc/mke2fs.conf"
  -files "/etc/ssl/certs/ca-certificates.crt:etc/ssl/certs/ca-certificates.crt"
  -files "$kdir/modules/lib/modules:lib/modules"
  -files "$top/image/rootfs/etc/passwd:etc/passwd"
  -files "$top/image/rootfs/etc/group:etc/group"
  -files "$top/image/rootfs/etc/hosts:etc/hosts"
  -files "$top/image/modules.txt:etc/modules.txt"
  -files "/usr/share/zoneinfo/UTC:usr/share/zoneinfo/UTC"
  -files "/usr/share/zoneinfo/Etc/UTC:usr/share/zoneinfo/Etc/UTC"
)
for b in postgres initdb pg_ctl pg_basebackup pg_rewind pg_dump pg_dumpall pg_restore pg_controldata \
         pg_isready pg_resetwal pg_waldump pg_archivecleanup pg_receivewal pg_verifybackup psql; do
  files+=(-files "$pgbin/$b:usr/lib/postgresql/$PG_MAJOR/bin/$b")
done
for so in "$pglib"/*.so; do
  case $(basename "$so") in llvmjit.so) continue ;; esac
  files+=(-files "$so:${so#/}")
done
for d in "$pgshare"/*; do
  case $(basename "$d") in man) continue ;; esac
  files+=(-files "$d:${d#/}")
done
# pack BINARY OUT: the initramfs with BINARY as /bin/appliance, zstd-compressed into OUT.
pack() {
  GOOS=linux GOARCH=amd64 go tool u-root -nocmd -defaultsh= -initcmd=/bin/appliance \
    -o "$2.cpio.tmp" -files "$1:bin/appliance" "${files[@]}" 2> "$out/u-root.log" || { cat "$out/u-root.log" >&2; die "u-root failed"; }
  zstd -q -f -T0 -10 --rm "$2.cpio.tmp" -o "$2.tmp"
  mv "$2.tmp" "$2"
}
pack "$out/appliance" "$out/initramfs.cpio.zst"
# The test firmware: the same archive followed by one holding the test build of /bin/appliance (the
# kernel unpacks concatenated archives in order; a later file replaces an earlier one).
(cd "$out/test-overlay" && echo bin/appliance | cpio -o -H newc -R 0:0 --quiet) | zstd -q -10 > "$out/test-overlay.cpio.zst"
cat "$out/initramfs.cpio.zst" "$out/test-overlay.cpio.zst" > "$out/initramfs-test.cpio.zst.tmp"
mv "$out/initramfs-test.cpio.zst.tmp" "$out/initramfs-test.cpio.zst"

# 4b. The firmware as UEFI boots it: one unified kernel image (the EFI stub with the kernel, the production
#     initramfs, the command line and os-release as sections), and an install disk: a GPT disk whose one EFI
#     system partition ("lawbox-installer") holds systemd-boot and that image. The unit booted from it puts
#     both on every member disk's boot partition (appliance/firmware).
cmdline="console=ttyS0,115200 panic=-1 loglevel=4"
printf '%s' "$cmdline" > "$out/cmdline"
# make_uki INITRD VERSION BUILD OUT. systemd-boot boots the newest slot by os-release's version fields
# (IMAGE_VERSION, else VERSION, else VERSION_ID): each starts with the build number, which rises with every
# build (the version is a git description, not ordered).
make_uki() {
  printf 'NAME="Lawbox"\nID=lawbox\nVERSION="%s (%s)"\nVERSION_ID="%s"\nIMAGE_VERSION="%s"\nPRETTY_NAME="Lawbox %s"\n' "$3" "$2" "$3" "$3" "$2" > "$out/os-release"
  local end=0 size vma e
  while read -r size vma; do e=$((0x$size + 0x$vma)); [ "$e" -gt "$end" ] && end=$e; done \
    < <(objdump -h "$efi/linuxx64.efi.stub" | awk 'NF == 7 && $1 ~ /^[0-9]+$/ {print $3, $4}')
  local osrel cmd linux initrd
  osrel=$(next_vma "$end"); cmd=$(next_vma $((osrel + $(stat -c%s "$out/os-release"))))
  linux=$(next_vma $((cmd + $(stat -c%s "$out/cmdline")))); initrd=$(next_vma $((linux + $(stat -c%s "$kdir/bzImage"))))
  objcopy --add-section .osrel="$out/os-release" --change-section-vma .osrel="$(printf 0x%x "$osrel")" \
    --add-section .cmdline="$out/cmdline" --change-section-vma .cmdline="$(printf 0x%x "$cmd")" \
    --add-section .linux="$kdir/bzImage" --change-section-vma .linux="$(printf 0x%x "$linux")" \
    --add-section .initrd="$1" --change-section-vma .initrd="$(printf 0x%x "$initrd")" \
    "$efi/linuxx64.efi.stub" "$4.tmp" && mv "$4.tmp" "$4"
}
next_vma() { echo $(( ($1 + 4095) / 4096 * 4096 )); }
uki=$out/lawbox-$version.efi
rm -f "$out"/lawbox-*.efi
make_uki "$out/initramfs.cpio.zst" "$version" "$buildno" "$uki"
inst=$out/installer.img
rm -f "$inst.tmp" && truncate -s 128M "$inst.tmp"
printf 'label: gpt\nstart=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="lawbox-installer"\n' | sfdisk -q "$inst.tmp"
export MTOOLS_SKIP_CHECK=1
mformat -i "$inst.tmp@@1M" -F -v LAWBOX ::
mmd -i "$inst.tmp@@1M" ::/EFI ::/EFI/BOOT ::/EFI/Linux ::/loader
mcopy -i "$inst.tmp@@1M" "$efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$inst.tmp@@1M" "$uki" "::/EFI/Linux/$(basename "$uki")"
printf 'timeout 0\neditor no\n' > "$out/loader.conf"
mcopy -i "$inst.tmp@@1M" "$out/loader.conf" ::/loader/loader.conf
mv "$inst.tmp" "$inst"
# The update bundle: the image, with a manifest signed by the key above.
rm -f "$out"/lawbox-*.update
go run ./cmd/bundle pack -key "$signkey" -version "$version" -build "$buildno" -out "$out/lawbox-$version.update" "$uki"
# The update tests' bundles, signed with the same key, never shipped: "next", the same firmware one build
# newer under another version; "unhealthy", the test build whose PID 1 never starts the daemon.
tb=$out/test-bundles
rm -rf "$tb" && mkdir -p "$tb"
for v in next unhealthy; do
  b=$((buildno + 1)); tags=; extra=
  [ "$v" = unhealthy ] && { b=$((buildno + 2)); tags=lawboxtest; extra="-X main.testTrial=never-healthy"; }
  CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "-s -w -X main.version=$version-$v -X main.build=$b -X main.updateKey=$updatekey $extra" \
    -o "$tb/appliance" ./cmd/appliance
  pack "$tb/appliance" "$tb/initramfs.cpio.zst"
  make_uki "$tb/initramfs.cpio.zst" "$version-$v" "$b" "$tb/lawbox-$version-$v.efi"
  go run ./cmd/bundle pack -key "$signkey" -version "$version-$v" -build "$b" -out "$tb/$v.update" "$tb/lawbox-$version-$v.efi"
  rm -f "$tb/appliance" "$tb/initramfs.cpio.zst" "$tb/lawbox-$version-$v.efi"
done

# 5. The manifest any QEMU harness boots from.
pgver=$(dpkg-query -W -f '${Version}' "postgresql-$PG_MAJOR")
e2ver=$(dpkg-query -W -f '${Version}' e2fsprogs)
smver=$(dpkg-query -W -f '${Version}' smartmontools)
sambaver=$(dpkg-query -W -f '${Version}' samba)
lvmver=$(dpkg-query -W -f '${Version}' lvm2)
csver=$(dpkg-query -W -f '${Version}' cryptsetup-bin)
cat > "$out/image.json.tmp" <<JSON
{
  "version": "$version",
  "kernel": "build/kernel/vmlinux",
  "kernel_bzimage": "build/kernel/bzImage",
  "initramfs": "build/initramfs.cpio.zst",
  "initramfs_test": "build/initramfs-test.cpio.zst",
  "uki": "build/$(basename "$uki")",
  "installer": "build/installer.img",
  "update": "build/lawbox-$version.update",
  "update_key": "build/signing.pub",
  "build": $buildno,
  "test_bundles": {"next": "build/test-bundles/next.update", "unhealthy": "build/test-bundles/unhealthy.update"},
  "cmdline": "console=ttyS0,115200 panic=-1 loglevel=4",
  "memory_mib": 1024,
  "inputs": {
    "kernel": "$KERNEL_PKG $KERNEL_DEB_VERSION sha256:$KERNEL_SHA256",
    "mdadm": "mdadm $MDADM_DEB_VERSION sha256:$MDADM_SHA256",
    "postgresql": "postgresql-$PG_MAJOR $pgver",
    "e2fsprogs": "e2fsprogs $e2ver",
    "samba": "samba $sambaver (smbd, the file shares)",
    "lvm2": "lvm2 $lvmver (the volumes on the data array)",
    "cryptsetup": "cryptsetup-bin $csver (the data array's encryption)",
    "drbd-utils": "drbd-utils $DRBD_DEB_VERSION sha256:$DRBD_SHA256",
    "smartmontools": "smartmontools $smver (smartctl: the QEMU tests' outside oracle for SMART)",
    "systemd-boot": "systemd-boot-efi $SDBOOT_DEB_VERSION sha256:$SDBOOT_SHA256"
  }
}
JSON
mv "$out/image.json.tmp" "$out/image.json"
ls -l "$kdir/vmlinux" "$out/initramfs.cpio.zst" | awk '{print "image: " $NF " " $5 " bytes"}'

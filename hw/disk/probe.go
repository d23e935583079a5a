package disk

import (
	"io"
	"syscall"

	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// probeSpan is how much of each end of a disk Probe reads. Every partition table, md superblock (0.90 and
// 1.0 at the end, 1.1 and 1.2 at the start), LVM label and common filesystem keeps a signature there.
const probeSpan = 1 << 20

// Probe says what a disk holds, judged from its first and last MiB: "" for a blank disk (all zeros), else
// what it found, e.g. "a GPT partition table". Anything it cannot name is "unrecognised data", never
// blank: only zeros are blank.
func Probe(dev string) (string, error) {
	head, tail, err := Ends(dev)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", dev, err)
	}
	return Identify(head, tail), nil
}

// Ends reads what Probe judges a disk by: its first and its last MiB (the whole disk in each when it is
// smaller).
func Ends(dev string) (head, tail []byte, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, nil, fmt.Errorf("size: %w", err)
	}
	head = make([]byte, min(probeSpan, size))
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, nil, fmt.Errorf("read start: %w", err)
	}
	tail = make([]byte, min(probeSpan, size))
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
		return nil, nil, fmt.Errorf("read end: %w", err)
	}
	return head, tail, nil
}

// Identify names the content of a disk from its first and last bytes (see Probe).
func Identify(head, tail []byte) string {
	at := func(b []byte, off int, sig string) bool {
		return len(b) >= off+len(sig) && string(b[off:off+len(sig)]) == sig
	}
	le32 := func(b []byte, off int) uint32 {
		if len(b) < off+4 {
			return 0
		}
		return binary.LittleEndian.Uint32(b[off:])
	}
	const mdMagic = 0xa92b4efc
	switch {
	case at(head, 512, "EFI PART") || at(head, 4096, "EFI PART"):
		return "a GPT partition table"
	case le32(head, 4096) == mdMagic || le32(head, 0) == mdMagic:
		return "an md RAID member (metadata 1.x)"
	case len(tail) >= 8192 && (le32(tail, len(tail)-8192) == mdMagic || le32(tail, len(tail)-65536) == mdMagic):
		return "an md RAID member (metadata 1.0 or 0.90)"
	case at(head, 1080, "\x53\xef"):
		return "an ext2/3/4 filesystem"
	case at(head, 0, "XFSB"):
		return "an XFS filesystem"
	case at(head, 65536+64, "_BHRfS_M"):
		return "a Btrfs filesystem"
	case at(head, 512, "LABELONE") || at(head, 0, "LABELONE"):
		return "an LVM physical volume"
	case at(head, 3, "NTFS    "):
		return "an NTFS filesystem"
	case at(head, 4086, "SWAPSPACE2"):
		return "a swap area"
	case at(head, 0, "LUKS\xba\xbe"):
		return "a LUKS encrypted volume"
	case at(head, 510, "\x55\xaa"):
		return "an MBR partition table or boot sector"
	case !zero(head) || !zero(tail):
		return "unrecognised data"
	}
	return ""
}

func zero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), 4096)
		if !bytes.Equal(b[:n], make([]byte, n)) {
			return false
		}
		b = b[n:]
	}
	return true
}

// PartitionName is the kernel name of partition n of disk: "vda3", "nvme0n1p3".
func PartitionName(disk string, n int) string {
	if last := disk[len(disk)-1]; last >= '0' && last <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

// DiskOf is the disk a partition belongs to ("vda3" -> "vda"), read from sysfs; "" if name is not a
// partition or is gone.
func DiskOf(sysRoot, name string) string {
	real, err := filepath.EvalSymlinks(filepath.Join(sysRoot, "class", "block", name))
	if err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(real, "partition")); err != nil {
		return ""
	}
	return filepath.Base(filepath.Dir(real))
}

// Partitions lists the kernel names of disk's partitions, in order.
func Partitions(sysRoot, disk string) []string {
	ents, _ := os.ReadDir(filepath.Join(sysRoot, "block", disk))
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), disk) {
			if _, err := os.Stat(filepath.Join(sysRoot, "block", disk, e.Name(), "partition")); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	sort.Strings(out)
	return out
}

// SectorSize is disk's logical block size (512 when sysfs does not say).
func SectorSize(sysRoot, disk string) int {
	n, err := strconv.Atoi(attr(filepath.Join(sysRoot, "block", disk), "queue/logical_block_size"))
	if err != nil || n < 512 {
		return 512
	}
	return n
}

// Wipe zeroes the first and last MiB of dev (a disk or partition), where Probe looks: old partition tables,
// md superblocks and filesystem signatures are gone afterwards. O_EXCL makes it fail on a device in use.
func Wipe(dev string) error {
	f, err := os.OpenFile(dev, os.O_WRONLY|syscall.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("wipe %s: %w", dev, err)
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return fmt.Errorf("wipe %s: size: %w", dev, err)
	}
	z := make([]byte, min(probeSpan, size))
	for _, off := range []int64{0, size - int64(len(z))} {
		if _, err := f.WriteAt(z, off); err != nil {
			return fmt.Errorf("wipe %s at %d: %w", dev, off, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wipe %s: sync: %w", dev, err)
	}
	return nil
}

// RereadPartitions asks the kernel to re-read f's partition table (BLKRRPART), so partition devices appear.
func RereadPartitions(f *os.File) error {
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); err != nil {
		return fmt.Errorf("re-read partitions of %s: %w", f.Name(), err)
	}
	return nil
}

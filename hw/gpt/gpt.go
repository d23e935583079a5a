// Package gpt writes and reads GUID partition tables (UEFI 2.10 §5.3): a protective MBR, the primary header
// and entry array at the start of the disk, and their backup at the end. It works on an io.ReaderAt/WriterAt
// of a known size and knows nothing about which partitions the appliance wants.
package gpt

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

const (
	entryCount = 128
	entrySize  = 128
	headerSize = 92
	signature  = "EFI PART"
)

// Well-known partition type GUIDs.
const (
	TypeLinuxRAID      = "A19D880F-05FC-4D3B-A006-743F0F84911E"
	TypeLinuxXBootLdr  = "BC13C2FF-59E6-4262-A352-B275FD6F7172"
	TypeLinuxFS        = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	TypeEFISystem      = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeUnused         = "00000000-0000-0000-0000-000000000000"
	entriesSectorBytes = entryCount * entrySize
)

// ErrNoTable means the disk holds no valid GPT (neither the primary nor the backup header checks out).
var ErrNoTable = errors.New("no GUID partition table")

// Partition is one entry. LBAs are in sectors of the table's sector size; Last is inclusive.
type Partition struct {
	Type  string // type GUID, upper case, e.g. TypeLinuxRAID
	GUID  string // unique GUID; Write makes one up when empty
	Name  string // up to 36 UTF-16 code units
	First uint64
	Last  uint64
}

// Table is a disk's partition table.
type Table struct {
	SectorSize int
	DiskGUID   string
	Partitions []Partition
}

// Geometry is where a table on a disk of size bytes may put partitions.
func Geometry(size int64, sectorSize int) (firstUsable, lastUsable uint64) {
	entrySectors := uint64(entriesSectorBytes / sectorSize)
	last := uint64(size/int64(sectorSize)) - 1
	return 2 + entrySectors, last - 1 - entrySectors
}

// Write writes t to a disk of size bytes: protective MBR, primary and backup headers and entries. The
// partitions must lie inside the usable area and not overlap.
func Write(w io.WriterAt, size int64, t Table) error {
	ss := t.SectorSize
	if ss < 512 || ss&(ss-1) != 0 {
		return fmt.Errorf("write GPT: bad sector size %d", ss)
	}
	if len(t.Partitions) > entryCount {
		return fmt.Errorf("write GPT: %d partitions, at most %d", len(t.Partitions), entryCount)
	}
	first, last := Geometry(size, ss)
	if size/int64(ss) < 2*int64(first) {
		return fmt.Errorf("write GPT: disk of %d bytes is too small", size)
	}
	if t.DiskGUID == "" {
		t.DiskGUID = NewGUID()
	}
	entries := make([]byte, entriesSectorBytes)
	for i, p := range t.Partitions {
		if p.First < first || p.Last > last || p.First > p.Last {
			return fmt.Errorf("write GPT: partition %d (%d-%d) outside the usable sectors %d-%d", i+1, p.First, p.Last, first, last)
		}
		for j := range i {
			if q := t.Partitions[j]; p.First <= q.Last && q.First <= p.Last {
				return fmt.Errorf("write GPT: partitions %d and %d overlap", j+1, i+1)
			}
		}
		if p.GUID == "" {
			p.GUID = NewGUID()
		}
		e := entries[i*entrySize : (i+1)*entrySize]
		if err := putGUID(e[0:16], p.Type); err != nil {
			return fmt.Errorf("write GPT: partition %d type: %w", i+1, err)
		}
		if err := putGUID(e[16:32], p.GUID); err != nil {
			return fmt.Errorf("write GPT: partition %d: %w", i+1, err)
		}
		binary.LittleEndian.PutUint64(e[32:], p.First)
		binary.LittleEndian.PutUint64(e[40:], p.Last)
		name := utf16.Encode([]rune(p.Name))
		if len(name) > 36 {
			return fmt.Errorf("write GPT: partition %d name %q is longer than 36 characters", i+1, p.Name)
		}
		for k, c := range name {
			binary.LittleEndian.PutUint16(e[56+2*k:], c)
		}
	}
	lastLBA := uint64(size/int64(ss)) - 1
	entrySectors := uint64(entriesSectorBytes / ss)
	primary, err := header(t.DiskGUID, 1, lastLBA, 2, first, last, entries)
	if err != nil {
		return fmt.Errorf("write GPT: %w", err)
	}
	backup, _ := header(t.DiskGUID, lastLBA, 1, lastLBA-entrySectors, first, last, entries)

	writes := []struct {
		lba uint64
		b   []byte
	}{
		{0, protectiveMBR(lastLBA, ss)},
		{1, pad(primary, ss)},
		{2, entries},
		{lastLBA - entrySectors, entries},
		{lastLBA, pad(backup, ss)},
	}
	for _, wr := range writes {
		if _, err := w.WriteAt(wr.b, int64(wr.lba)*int64(ss)); err != nil {
			return fmt.Errorf("write GPT at sector %d: %w", wr.lba, err)
		}
	}
	return nil
}

func header(diskGUID string, my, alt, entriesLBA, first, last uint64, entries []byte) ([]byte, error) {
	h := make([]byte, headerSize)
	copy(h, signature)
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], headerSize)
	binary.LittleEndian.PutUint64(h[24:], my)
	binary.LittleEndian.PutUint64(h[32:], alt)
	binary.LittleEndian.PutUint64(h[40:], first)
	binary.LittleEndian.PutUint64(h[48:], last)
	if err := putGUID(h[56:72], diskGUID); err != nil {
		return nil, fmt.Errorf("disk GUID: %w", err)
	}
	binary.LittleEndian.PutUint64(h[72:], entriesLBA)
	binary.LittleEndian.PutUint32(h[80:], entryCount)
	binary.LittleEndian.PutUint32(h[84:], entrySize)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	return h, nil
}

func protectiveMBR(lastLBA uint64, ss int) []byte {
	m := make([]byte, ss)
	p := m[446:]
	copy(p, []byte{0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF})
	binary.LittleEndian.PutUint32(p[8:], 1)
	n := min(lastLBA, 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(p[12:], uint32(n))
	m[510], m[511] = 0x55, 0xAA
	return m
}

func pad(b []byte, n int) []byte { return append(b, make([]byte, n-len(b))...) }

// Read reads the table of a disk of size bytes with the given sector size. It uses the primary header and
// falls back to the backup when the primary is damaged.
func Read(r io.ReaderAt, size int64, sectorSize int) (Table, error) {
	lastLBA := uint64(size/int64(sectorSize)) - 1
	var errs []error
	for _, lba := range []uint64{1, lastLBA} {
		t, err := readAt(r, lba, sectorSize)
		if err == nil {
			return t, nil
		}
		errs = append(errs, err)
	}
	return Table{}, fmt.Errorf("%w: %w", ErrNoTable, errors.Join(errs...))
}

func readAt(r io.ReaderAt, lba uint64, ss int) (Table, error) {
	h := make([]byte, headerSize)
	if _, err := r.ReadAt(h, int64(lba)*int64(ss)); err != nil {
		return Table{}, fmt.Errorf("header at sector %d: %w", lba, err)
	}
	if string(h[:8]) != signature {
		return Table{}, fmt.Errorf("header at sector %d: no signature", lba)
	}
	want := binary.LittleEndian.Uint32(h[16:])
	c := bytes.Clone(h)
	binary.LittleEndian.PutUint32(c[16:], 0)
	if crc32.ChecksumIEEE(c) != want {
		return Table{}, fmt.Errorf("header at sector %d: bad checksum", lba)
	}
	n, size := binary.LittleEndian.Uint32(h[80:]), binary.LittleEndian.Uint32(h[84:])
	if size < 128 || n*size > 1<<20 {
		return Table{}, fmt.Errorf("header at sector %d: implausible entry array %d x %d", lba, n, size)
	}
	entries := make([]byte, n*size)
	if _, err := r.ReadAt(entries, int64(binary.LittleEndian.Uint64(h[72:]))*int64(ss)); err != nil {
		return Table{}, fmt.Errorf("entries of header at sector %d: %w", lba, err)
	}
	if crc32.ChecksumIEEE(entries) != binary.LittleEndian.Uint32(h[88:]) {
		return Table{}, fmt.Errorf("entries of header at sector %d: bad checksum", lba)
	}
	t := Table{SectorSize: ss, DiskGUID: guidString(h[56:72])}
	for i := range int(n) {
		e := entries[i*int(size) : (i+1)*int(size)]
		typ := guidString(e[0:16])
		if typ == typeUnused {
			continue
		}
		var name []uint16
		for k := 56; k+1 < 128; k += 2 {
			c := binary.LittleEndian.Uint16(e[k:])
			if c == 0 {
				break
			}
			name = append(name, c)
		}
		t.Partitions = append(t.Partitions, Partition{
			Type: typ, GUID: guidString(e[16:32]), Name: string(utf16.Decode(name)),
			First: binary.LittleEndian.Uint64(e[32:]), Last: binary.LittleEndian.Uint64(e[40:]),
		})
	}
	return t, nil
}

// NewGUID returns a random (version 4) GUID.
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// putGUID stores a textual GUID in the mixed-endian on-disk order: the first three groups little-endian.
func putGUID(dst []byte, s string) error {
	var raw [16]byte
	hexs := strings.ReplaceAll(s, "-", "")
	if len(hexs) != 32 || len(s) != 36 {
		return fmt.Errorf("bad GUID %q", s)
	}
	for i := range 16 {
		var v byte
		if _, err := fmt.Sscanf(hexs[2*i:2*i+2], "%02X", &v); err != nil {
			return fmt.Errorf("bad GUID %q", s)
		}
		raw[i] = v
	}
	dst[0], dst[1], dst[2], dst[3] = raw[3], raw[2], raw[1], raw[0]
	dst[4], dst[5] = raw[5], raw[4]
	dst[6], dst[7] = raw[7], raw[6]
	copy(dst[8:16], raw[8:16])
	return nil
}

func guidString(b []byte) string {
	return fmt.Sprintf("%02X%02X%02X%02X-%02X%02X-%02X%02X-%X-%X",
		b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8:10], b[10:16])
}

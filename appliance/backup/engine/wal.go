package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/pgsql"
)

// Point-in-time restores: the server archives every finished WAL segment into WALDir (PostgreSQL's
// basic_archive, no shell command); ShipWAL seals each into wal/ on the unit's array, from where they are
// copied offsite like the backups. A weekly base copy (pg_basebackup) plus the WAL after it recovers the
// cluster to any moment in between, in a scratch server; the chosen databases are then dumped from it and
// restored into production like a dump.

// WALPrefix is where the sealed WAL files are kept on a target.
const WALPrefix = "wal/"

// ErrWALEnds: the archived WAL does not reach the moment asked for.
var ErrWALEnds = errors.New("the archived WAL ends before")

// walName matches what the archiver writes: segments, timeline histories and backup history files.
var walName = regexp.MustCompile(`^([0-9A-F]{24}(\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$`)

var (
	startRE    = regexp.MustCompile(`(?m)^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)`)
	timelineRE = regexp.MustCompile(`(?m)^START TIMELINE: ([0-9]+)$`)
)

// base stores a physical copy of the cluster (a tar of its data directory) in backup m, and where in the
// WAL it starts, read from the backup_label inside the copy.
func (e *Engine) base(ctx context.Context, to age.Recipient, m *Manifest) error {
	pr, pw := io.Pipe()
	label := make(chan string, 1)
	go func() {
		found := ""
		tr := tar.NewReader(pr)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Name == "backup_label" {
				b, _ := io.ReadAll(io.LimitReader(tr, 64<<10))
				found = string(b)
				break
			}
		}
		label <- found
		io.Copy(io.Discard, pr) // the rest of the copy
	}()
	obj, err := e.dumpTo(ctx, to, m.ID+"/base.tar.zst.age", pw, "pg_basebackup", append(pgsql.ClientArgs(e.Socket, e.Port),
		"-D", "-", "-F", "t", "-X", "none", "--no-manifest", "--checkpoint=fast")...)
	pw.Close()
	text := <-label
	if err != nil {
		return err
	}
	start, tl := startRE.FindStringSubmatch(text), timelineRE.FindStringSubmatch(text)
	if start == nil || tl == nil {
		return fmt.Errorf("the copy has no readable backup_label (%q)", text)
	}
	m.LSN, m.WALFile = start[1], start[2]
	m.Timeline, _ = strconv.Atoi(tl[1])
	m.Ended = time.Now().UTC() // at or after the copy's end-of-backup record
	m.Objects = append(m.Objects, obj)
	return nil
}

// ShipWAL seals every file the server archived into WALDir and stores it under wal/ on the unit's array;
// each plain file is removed once stored. It returns how many it shipped.
func (e *Engine) ShipWAL(ctx context.Context) (int, error) {
	if e.WALDir == "" {
		return 0, nil
	}
	e.shipMu.Lock() // the schedule's tick and the end of a backup both ship
	defer e.shipMu.Unlock()
	id, err := e.Identity()
	if err != nil {
		return 0, err
	}
	names, err := e.archived()
	n := 0
	for _, name := range names {
		p := filepath.Join(e.WALDir, name)
		data, err := os.ReadFile(p)
		if err != nil {
			return n, err
		}
		_, err = seal(ctx, e.Local, WALPrefix+name+".zst.age", bytes.NewReader(sealWAL(id, name, data)), id.Recipient())
		if err != nil {
			return n, fmt.Errorf("ship WAL %s: %w", name, err)
		}
		if err := os.Remove(p); err != nil {
			return n, err
		}
		n++
	}
	return n, err
}

// CopyWAL copies to t the WAL files on the unit's array that t lacks.
func (e *Engine) CopyWAL(ctx context.Context, t target.Target) error {
	mine, err := e.Local.List(ctx)
	if err != nil {
		return err
	}
	theirs, err := t.List(ctx)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, k := range theirs {
		have[k] = true
	}
	for _, k := range mine {
		if !strings.HasPrefix(k, WALPrefix) || have[k] {
			continue
		}
		r, err := e.Local.Get(ctx, k)
		if err != nil {
			return err
		}
		err = t.Put(ctx, k, r, -1)
		r.Close()
		if err != nil {
			return fmt.Errorf("WAL %s: %w", k, err)
		}
	}
	return nil
}

// DropWAL removes the archived files unshipped: on the production unit of a pair (its mirror archives
// the same WAL) and on a unit whose backups are not set up.
func (e *Engine) DropWAL() error {
	names, err := e.archived()
	for _, name := range names {
		if rerr := os.Remove(filepath.Join(e.WALDir, name)); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func (e *Engine) archived() ([]string, error) {
	if e.WALDir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(e.WALDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var names []string
	for _, ent := range ents {
		if walName.MatchString(ent.Name()) {
			names = append(names, ent.Name())
		}
	}
	sort.Strings(names)
	return names, err
}

// startSegment is the part of the name of the segment holding a base copy's start that orders segments
// whatever the timeline (log and segment numbers).
func (m *Manifest) startSegment() (string, error) {
	if len(m.WALFile) == 24 {
		return m.WALFile[8:], nil
	}
	return segmentOf(m.LSN) // a copy recorded before its segment was
}

// segmentOf is startSegment for a WAL position "X/Y" of a cluster with PostgreSQL's default 16 MB segments.
func segmentOf(lsn string) (string, error) {
	hi, lo, ok := strings.Cut(lsn, "/")
	x, err1 := strconv.ParseUint(hi, 16, 32)
	y, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return "", fmt.Errorf("WAL position %q", lsn)
	}
	return fmt.Sprintf("%08X%08X", x, y>>24), nil
}

// pruneWAL deletes from t the WAL segments older than the oldest base copy there: nothing can use them.
func (e *Engine) pruneWAL(ctx context.Context, t target.Target, ms []*Manifest) (int, error) {
	oldest := ""
	for _, m := range ms {
		if m.Kind == KindBase {
			if seg, err := m.startSegment(); err == nil && (oldest == "" || seg < oldest) {
				oldest = seg
			}
		}
	}
	if oldest == "" {
		return 0, nil
	}
	keys, err := t.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, WALPrefix)
		name = strings.TrimSuffix(name, ".zst.age")
		if !ok || len(name) < 24 || strings.HasSuffix(name, ".history") || name[8:24] >= oldest {
			continue
		}
		if err := t.Delete(ctx, k); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// A WAL object is in no manifest, and encryption to the public key proves nothing about its writer: its
// plain text starts with walMagic and an HMAC of the segment's name and content under a key derived from
// the recovery identity. Without it, anyone able to write to a target could forge a segment, replay it
// into a point-in-time restore, and so into production.
const walMagic = "lawbox wal 1\n"

func walMAC(id *age.X25519Identity, name string) hash.Hash {
	k := sha256.Sum256([]byte("lawbox wal\x00" + id.String()))
	h := hmac.New(sha256.New, k[:])
	h.Write([]byte(name + "\x00"))
	return h
}

// sealWAL is the plain text stored for segment name: walMagic, the MAC, the content.
func sealWAL(id *age.X25519Identity, name string, data []byte) []byte {
	h := walMAC(id, name)
	h.Write(data)
	return slices.Concat([]byte(walMagic), h.Sum(nil), data)
}

// fetch decrypts WAL object key, segment name, into path, checking its MAC; a segment that fails is
// removed and refused.
func fetch(ctx context.Context, t target.Target, key, name string, id *age.X25519Identity, path string) error {
	r, err := Open(ctx, t, Object{Key: key}, id)
	if err != nil {
		return err
	}
	defer r.Close()
	head := make([]byte, len(walMagic)+sha256.Size)
	if _, err := io.ReadFull(r, head); err != nil || string(head[:len(walMagic)]) != walMagic {
		return fmt.Errorf("%s carries no authentication (not archived by this firmware for this recovery identity): refused", key)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	h := walMAC(id, name)
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !hmac.Equal(h.Sum(nil), head[len(walMagic):]) {
		err = fmt.Errorf("%s is forged or altered (its authentication does not match): refused", key)
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// untar unpacks a pg_basebackup tar into dir, owned by uid:gid. It runs as root on what a target sent:
// every file is written through an os.Root of dir (a path through a link that leaves dir is refused),
// and a link whose target leaves dir is refused outright (the server would write through it later).
func untar(r io.Reader, dir string, uid, gid int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !filepath.IsLocal(h.Name) {
			return fmt.Errorf("tar entry %q leaves the data directory", h.Name)
		}
		p := filepath.Clean(h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(p, 0o700)
		case tar.TypeReg:
			var f *os.File
			if f, err = root.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
				_, err = io.Copy(f, tr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(h.Linkname) || !filepath.IsLocal(filepath.Join(filepath.Dir(p), h.Linkname)) {
				return fmt.Errorf("tar entry %q links to %q, outside the data directory", h.Name, h.Linkname)
			}
			err = root.Symlink(h.Linkname, p)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
		if err := root.Lchown(p, uid, gid); err != nil {
			return err
		}
	}
}

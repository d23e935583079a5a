package engine

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/target"
	"github.com/lawbox/appliance/appliance/durable"
)

// Documents: the configured folders are backed up file by file. A file's content is stored once, as
// docs/<MAC of the content>, compressed and encrypted, and shared by every documents backup that has it:
// an unchanged file is neither read again (same size, time and mode as in the last backup) nor sent
// again (the offsite copy skips objects already there). The MAC's key comes from the recovery identity,
// so the target cannot tell whether it holds a given known file. Paths, sizes and times are in the
// encrypted manifest only.

// DocsPrefix is where a documents backup keeps its files' contents, shared between backups.
const DocsPrefix = "docs/"

// DocFile is one document in a documents backup.
type DocFile struct {
	Path    string      `json:"path"`
	Size    int64       `json:"size"`
	ModTime time.Time   `json:"mtime"`
	Mode    fs.FileMode `json:"mode"`
	Object  string      `json:"object"`
}

func docMAC(id *age.X25519Identity) hash.Hash {
	k := sha256.Sum256([]byte("lawbox documents\x00" + id.String()))
	return hmac.New(sha256.New, k[:])
}

// docKey is the object a file's content is stored as.
func docKey(id *age.X25519Identity, r io.Reader) (string, error) {
	mac := docMAC(id)
	if _, err := io.Copy(mac, r); err != nil {
		return "", err
	}
	return DocsPrefix + hex.EncodeToString(mac.Sum(nil)) + ".zst.age", nil
}

// BackupDocuments backs up every file under folders into a new documents backup on the unit's array,
// reading each folder where view says it is now (the folder itself, or its place in a snapshot); the
// backup names the files by their folders. It returns nil, and takes no backup, when nothing changed
// since the last one, or when there is no file and never was.
func (e *Engine) BackupDocuments(ctx context.Context, folders []string, view func(string) string) (*Manifest, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, err := e.Identity()
	if err != nil {
		return nil, fmt.Errorf("documents: recovery identity: %w", err)
	}
	ms, _, err := Manifests(ctx, e.Local, id)
	if err != nil {
		return nil, fmt.Errorf("documents: %w", err)
	}
	known := map[string]Object{} // every stored content, from every documents backup
	var prev *Manifest
	for _, m := range ms {
		if m.Kind == KindDocuments {
			prev = m
			for _, o := range m.Objects {
				known[o.Key] = o
			}
		}
	}
	before := map[string]DocFile{}
	if prev != nil {
		for _, f := range prev.Files {
			before[f.Path] = f
		}
	}
	start := e.Clock().UTC()
	m := &Manifest{ID: start.Format("20060102T150405Z") + "-" + KindDocuments, Kind: KindDocuments, Created: start, Firmware: e.Firmware, Files: []DocFile{}}
	changed, used := prev == nil, map[string]bool{}
	for _, folder := range folders {
		from := view(folder)
		err := filepath.WalkDir(from, func(read string, d fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(from, read)
			p := filepath.Join(folder, rel)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && read != from { // removed while we walk
					return nil
				}
				if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
					pe.Path = p // the folder's name, not the snapshot's
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			} else if err != nil {
				return err
			}
			f := DocFile{Path: p, Size: fi.Size(), ModTime: fi.ModTime().UTC(), Mode: fi.Mode().Perm()}
			if old, ok := before[p]; ok && old.Size == f.Size && old.ModTime.Equal(f.ModTime) && old.Mode == f.Mode && known[old.Object].Key != "" {
				f.Object = old.Object
			} else {
				changed = true
				o, err := e.storeDocument(ctx, id, read, known)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				f.Object = o.Key
			}
			m.Files = append(m.Files, f)
			if !used[f.Object] {
				used[f.Object] = true
				m.Objects = append(m.Objects, known[f.Object])
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("documents: %w", err)
		}
	}
	if !changed && len(m.Files) == len(prev.Files) || prev == nil && len(m.Files) == 0 {
		return nil, nil
	}
	guide, err := e.putGuide(ctx, m, id.Recipient().String())
	if err != nil {
		return nil, fmt.Errorf("documents: restore guide: %w", err)
	}
	m.Objects = append(m.Objects, guide)
	if err := e.putManifest(ctx, e.Local, id, m); err != nil {
		return nil, err
	}
	e.Log.Info("documents backed up", "id", m.ID, "files", len(m.Files), "took", time.Since(start))
	return m, nil
}

// storeDocument stores the content of file p, unless known holds it already.
func (e *Engine) storeDocument(ctx context.Context, id *age.X25519Identity, p string, known map[string]Object) (Object, error) {
	f, err := os.Open(p)
	if err != nil {
		return Object{}, err
	}
	defer f.Close()
	key, err := docKey(id, f)
	if err != nil {
		return Object{}, err
	}
	if o, ok := known[key]; ok {
		return o, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Object{}, err
	}
	o, err := seal(ctx, e.Local, key, f, id.Recipient())
	if err != nil {
		return Object{}, err
	}
	known[key] = o
	return o, nil
}

// verifyDocuments reads back every content of documents backup m: it decrypts, its MAC is its name, its
// length the size of the files that have it.
func (e *Engine) verifyDocuments(ctx context.Context, t target.Target, m *Manifest) error {
	id, err := e.Identity()
	if err != nil {
		return err
	}
	sizes := map[string]int64{}
	for _, f := range m.Files {
		sizes[f.Object] = f.Size
	}
	for _, o := range m.Objects {
		if !strings.HasPrefix(o.Key, DocsPrefix) {
			continue
		}
		r, err := Open(ctx, t, o, id)
		if err != nil {
			return err
		}
		cr := &countReader{r: r}
		key, err := docKey(id, cr)
		r.Close()
		if err != nil {
			return err
		}
		if key != o.Key || cr.n != sizes[o.Key] {
			return fmt.Errorf("%s: its content is not the document that was backed up", o.Key)
		}
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// Documents reads the manifest of documents backup backupID on t.
func (e *Engine) Documents(ctx context.Context, t target.Target, backupID string) (*Manifest, *age.X25519Identity, error) {
	m, id, err := e.manifest(ctx, t, backupID)
	if err != nil {
		return nil, nil, err
	}
	if m.Kind != KindDocuments {
		return nil, nil, fmt.Errorf("backup %s holds no documents: %w", backupID, appliance.ErrBadInput)
	}
	return m, id, nil
}

// OpenDocument returns the content of the document at path in documents backup backupID on t.
func (e *Engine) OpenDocument(ctx context.Context, t target.Target, backupID, path string) (io.ReadCloser, DocFile, error) {
	m, id, err := e.Documents(ctx, t, backupID)
	if err != nil {
		return nil, DocFile{}, err
	}
	for _, f := range m.Files {
		if f.Path == path {
			r, err := Open(ctx, t, objectOf(m, f), id)
			return r, f, err
		}
	}
	return nil, DocFile{}, fmt.Errorf("backup %s holds no document %q: %w", backupID, path, appliance.ErrNotFound)
}

func objectOf(m *Manifest, f DocFile) Object {
	for _, o := range m.Objects {
		if o.Key == f.Object {
			return o
		}
	}
	return Object{Key: f.Object}
}

// RestoreDocuments writes the documents paths (every one when empty) of documents backup backupID on t
// back where they were. A file that is there with the same content is left alone; one that differs is
// kept, and the backup's version written beside it as NAME.restored-DATE. Nothing is overwritten.
func (e *Engine) RestoreDocuments(ctx context.Context, t target.Target, backupID string, paths []string) (appliance.DocumentsRestored, error) {
	var res appliance.DocumentsRestored
	m, id, err := e.Documents(ctx, t, backupID)
	if err != nil {
		return res, err
	}
	files := m.Files
	if len(paths) > 0 {
		byPath := map[string]DocFile{}
		for _, f := range m.Files {
			byPath[f.Path] = f
		}
		files = nil
		for _, p := range paths {
			f, ok := byPath[p]
			if !ok {
				return res, fmt.Errorf("backup %s holds no document %q: %w", backupID, p, appliance.ErrNotFound)
			}
			files = append(files, f)
		}
	}
	stamp := e.Clock().UTC().Format("20060102-150405")
	for _, f := range files {
		if !filepath.IsAbs(f.Path) || filepath.Clean(f.Path) != f.Path {
			return res, fmt.Errorf("document path %q in backup %s", f.Path, backupID)
		}
		dest := f.Path
		if cur, err := os.Open(f.Path); err == nil {
			key, kerr := docKey(id, cur)
			cur.Close()
			if kerr == nil && key == f.Object {
				res.Unchanged++
				continue
			}
			dest = f.Path + ".restored-" + stamp
			res.Beside = append(res.Beside, dest)
		}
		if err := e.writeDocument(ctx, t, objectOf(m, f), id, f, dest); err != nil {
			return res, fmt.Errorf("restore %s: %w", f.Path, err)
		}
		res.Restored++
	}
	e.Log.Warn("documents restored", "backup", backupID, "restored", res.Restored, "unchanged", res.Unchanged, "beside", len(res.Beside))
	return res, nil
}

func (e *Engine) writeDocument(ctx context.Context, t target.Target, o Object, id age.Identity, f DocFile, dest string) error {
	r, err := Open(ctx, t, o, id)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	if err := durable.WriteFile(dest, r, nil); err != nil {
		return err
	}
	if err := os.Chmod(dest, f.Mode); err != nil {
		return err
	}
	return os.Chtimes(dest, f.ModTime, f.ModTime)
}

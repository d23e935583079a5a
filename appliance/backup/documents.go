package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lawbox/appliance/appliance"
	"github.com/lawbox/appliance/appliance/backup/engine"
	"github.com/lawbox/appliance/appliance/state"
)

// backupDocuments backs up the document folders; nil when nothing changed. Folders on the documents
// volume are read where it says (on a pair's mirror, a snapshot of its replicated copy).
func (s *Service) backupDocuments(ctx context.Context) (*engine.Manifest, error) {
	folders := s.documentFolders()
	if len(folders) == 0 {
		return nil, fmt.Errorf("no document folder is set: %w", appliance.ErrBadInput)
	}
	view := func(p string) string { return p }
	if d := s.Documents; d != nil && slices.ContainsFunc(folders, func(f string) bool { return within(d.Root(), f) }) {
		dir, release, err := d.Open(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
		view = func(p string) string {
			if !within(d.Root(), p) {
				return p
			}
			rel, _ := filepath.Rel(d.Root(), p)
			return filepath.Join(dir, rel)
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) && s.byDefault() {
			return nil, nil // no share ever held a file here
		}
	}
	return s.Engine.BackupDocuments(ctx, folders, view)
}

// within reports whether path is root or under it.
func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return root != "" && err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// notDocuments are the appliance's own folders on the data array.
var notDocuments = []string{"postgresql", "backups", "backup-scratch", "wal-archive"}

// SetDocumentFolders sets the folders whose documents this unit backs up: existing folders on the data
// array, not the appliance's own.
func (s *Service) SetDocumentFolders(_ context.Context, folders []string) error {
	if len(folders) > 20 {
		return fmt.Errorf("at most 20 document folders: %w", appliance.ErrBadInput)
	}
	clean := []string{}
	for _, f := range folders {
		rel, err := filepath.Rel(s.DataRoot, f)
		if f == "" || !filepath.IsAbs(f) || err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("document folder %q: a folder on the data array, under %s/: %w", f, s.DataRoot, appliance.ErrBadInput)
		}
		if top, _, _ := strings.Cut(filepath.ToSlash(rel), "/"); slices.Contains(notDocuments, top) {
			return fmt.Errorf("document folder %q is the appliance's own: %w", f, appliance.ErrBadInput)
		}
		if s.Documents != nil && within(s.Documents.Root(), f) {
			// a share's folder: the shares' volume may be mounted on the partner only (this unit its mirror)
		} else if fi, err := os.Stat(f); err != nil || !fi.IsDir() {
			return fmt.Errorf("document folder %q does not exist: %w", f, appliance.ErrBadInput)
		}
		clean = append(clean, filepath.Clean(f))
	}
	return s.Engine.Store.PutJSON(state.BucketConfig, foldersKey, clean)
}

// DocumentsVolume is where the file shares keep their folders, as a documents backup reads it.
type DocumentsVolume interface {
	// Root is the folder the shares' folders are in ("/data/documents").
	Root() string
	// Open answers where the files under Root are read now (Root itself, or a snapshot of it), and what
	// to call when done.
	Open(ctx context.Context) (string, func(), error)
}

// documentFolders are the folders set, or the shares' volume when none is.
func (s *Service) documentFolders() []string {
	var fs []string
	if err := s.Engine.Store.GetJSON(state.BucketConfig, foldersKey, &fs); err != nil && !errors.Is(err, state.ErrNotFound) {
		s.Engine.Log.Error("document folders unreadable", "err", err)
	}
	if len(fs) == 0 && s.Documents != nil {
		return []string{s.Documents.Root()}
	}
	return fs
}

// byDefault reports whether the documents backed up are the shares' volume because no folder is set.
func (s *Service) byDefault() bool {
	var fs []string
	err := s.Engine.Store.GetJSON(state.BucketConfig, foldersKey, &fs)
	return s.Documents != nil && (errors.Is(err, state.ErrNotFound) || err == nil && len(fs) == 0)
}

// DocumentFiles lists the documents of documents backup backupID.
func (s *Service) DocumentFiles(ctx context.Context, backupID string) ([]appliance.DocumentFile, error) {
	id, err := s.loadIdentity()
	if err != nil {
		return nil, err
	}
	t, err := s.locate(ctx, id, backupID, true)
	if err != nil {
		return nil, err
	}
	m, _, err := s.Engine.Documents(ctx, t, backupID)
	if err != nil {
		return nil, err
	}
	out := make([]appliance.DocumentFile, len(m.Files))
	for i, f := range m.Files {
		out[i] = appliance.DocumentFile{Path: f.Path, Size: f.Size, Modified: f.ModTime}
	}
	return out, nil
}

// OpenDocument returns one document of documents backup backupID, to download.
func (s *Service) OpenDocument(ctx context.Context, backupID, path string) (io.ReadCloser, appliance.DocumentFile, error) {
	id, err := s.loadIdentity()
	if err != nil {
		return nil, appliance.DocumentFile{}, err
	}
	t, err := s.locate(ctx, id, backupID, true)
	if err != nil {
		return nil, appliance.DocumentFile{}, err
	}
	r, f, err := s.Engine.OpenDocument(ctx, t, backupID, path)
	return r, appliance.DocumentFile{Path: f.Path, Size: f.Size, Modified: f.ModTime}, err
}

package webui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// fakeBackups has one verified backup once set up.
type fakeBackups struct {
	identity       string
	targets        []appliance.BackupTarget
	runs           int
	restores       []appliance.BackupRestore
	configRestores []string
	moments        []time.Time
	retention      appliance.BackupRetention
	folders        []string
	running        string
	progress       [2]int64
	failAt         int           // Export fails after writing this many bytes (0: never)
	gate           chan struct{} // RunBackup waits for it to close (nil: it does not wait)
	badVerify      bool          // VerifyBackup finds a difference
}

func (f *fakeBackups) Backups(context.Context) (appliance.BackupStatus, error) {
	st := appliance.BackupStatus{SetUp: f.identity != "", Backups: []appliance.Backup{}}
	if st.SetUp {
		st.Recipient, st.Retention, st.DocumentFolders = "age1fakerecipient", f.retention, f.folders
		st.Running, st.ProgressDone, st.ProgressTotal = f.running, f.progress[0], f.progress[1]
		st.Backups = append(st.Backups, appliance.Backup{ID: "20261123T021500Z-documents", Kind: "documents", Targets: []string{"this unit"}, Files: 1})
	}
	if st.SetUp {
		v := &appliance.BackupVerification{ID: "20261123T020000Z-dump", Target: "s3://x/y/", OK: true, Time: time.Now().Add(-time.Hour)}
		st.Backups = append(st.Backups, appliance.Backup{ID: v.ID, Kind: "dump", SizeBytes: 1 << 20, Targets: []string{"this unit", v.Target}, Verified: v, Databases: []string{"practice"}})
		st.LastVerified = v
	}
	return st, nil
}

func (f *fakeBackups) CreateIdentity(context.Context) (string, error) {
	if f.identity != "" {
		return "", fmt.Errorf("exists: %w", appliance.ErrConflict)
	}
	f.identity = "AGE-SECRET-KEY-1TEST"
	return f.identity, nil
}

func (f *fakeBackups) ImportIdentity(_ context.Context, id string) error {
	if !strings.HasPrefix(id, "AGE-SECRET-KEY-1") {
		return fmt.Errorf("not an identity: %w", appliance.ErrBadInput)
	}
	f.identity = id
	return nil
}

// RestoreBackup knows backup 20261123T020000Z-dump, which holds the database practice, and a database
// practice that exists.
func (f *fakeBackups) RestoreBackup(_ context.Context, id string, req appliance.BackupRestore) (appliance.BackupRestoreResult, error) {
	res := appliance.BackupRestoreResult{ID: id}
	if id != "20261123T020000Z-dump" {
		return res, fmt.Errorf("backup %s: %w", id, appliance.ErrNotFound)
	}
	into := req.Into
	if into == "" {
		into = "practice"
	}
	if into == "practice" && !req.Replace {
		return res, fmt.Errorf("database practice exists: %w", appliance.ErrConflict)
	}
	f.restores = append(f.restores, req)
	d := appliance.RestoredDatabase{Database: "practice", Into: into, Tables: 2, Rows: 5000}
	if into == "practice" {
		d.KeptAs = "practice_before_20261124_031500"
	}
	res.Databases = []appliance.RestoredDatabase{d}
	return res, nil
}

// RestorePointInTime knows moments of the last week.
func (f *fakeBackups) RestorePointInTime(ctx context.Context, at time.Time, req appliance.BackupRestore) (appliance.BackupRestoreResult, error) {
	if time.Since(at) > 7*24*time.Hour {
		return appliance.BackupRestoreResult{}, fmt.Errorf("no base copy before %s: %w", at, appliance.ErrNotFound)
	}
	f.moments = append(f.moments, at)
	return f.RestoreBackup(ctx, "20261123T020000Z-dump", req)
}

func (f *fakeBackups) SetRetention(_ context.Context, r appliance.BackupRetention) error {
	if r.Daily < 1 {
		return fmt.Errorf("daily: %w", appliance.ErrBadInput)
	}
	f.retention = r
	return nil
}

func (f *fakeBackups) SetDocumentFolders(_ context.Context, folders []string) error {
	for _, d := range folders {
		if !strings.HasPrefix(d, "/data/") {
			return fmt.Errorf("folder %q: %w", d, appliance.ErrBadInput)
		}
	}
	f.folders = folders
	return nil
}

// The documents backup 20261123T021500Z-documents holds one letter.
func (f *fakeBackups) DocumentFiles(_ context.Context, id string) ([]appliance.DocumentFile, error) {
	if id != "20261123T021500Z-documents" {
		return nil, fmt.Errorf("backup %s: %w", id, appliance.ErrNotFound)
	}
	return []appliance.DocumentFile{{Path: "/data/documents/smith & co/letter.txt", Size: 6}}, nil
}

func (f *fakeBackups) OpenDocument(ctx context.Context, id, path string) (io.ReadCloser, appliance.DocumentFile, error) {
	ds, err := f.DocumentFiles(ctx, id)
	if err != nil {
		return nil, appliance.DocumentFile{}, err
	}
	if path != ds[0].Path {
		return nil, appliance.DocumentFile{}, fmt.Errorf("document %q: %w", path, appliance.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader("Dear X")), ds[0], nil
}

func (f *fakeBackups) Export(_ context.Context, db string, w io.Writer) error {
	if db != "practice" {
		return fmt.Errorf("database %q: %w", db, appliance.ErrNotFound)
	}
	if f.failAt > 0 {
		w.Write(bytes.Repeat([]byte("P"), f.failAt))
		return errors.New("pg_dump: canceled")
	}
	_, err := w.Write([]byte("PGDMP practice"))
	return err
}

func (f *fakeBackups) SetTargets(_ context.Context, ts []appliance.BackupTarget) error {
	for _, t := range ts {
		if t.Kind == "s3" && t.Bucket == "" {
			return fmt.Errorf("bucket: %w", appliance.ErrBadInput)
		}
	}
	f.targets = ts
	return nil
}

func (f *fakeBackups) RunBackup(_ context.Context, kind string) (appliance.Backup, error) {
	if f.gate != nil {
		<-f.gate
	}
	f.runs++
	return appliance.Backup{ID: "20261123T101500Z-" + kind, Kind: kind}, nil
}

func (f *fakeBackups) RestoreConfig(_ context.Context, id string) (appliance.ConfigRestored, error) {
	f.configRestores = append(f.configRestores, id)
	return appliance.ConfigRestored{ID: id, Restored: []string{"1 file shares and 1 file accounts"}}, nil
}

func (f *fakeBackups) VerifyBackup(_ context.Context, id string) (appliance.BackupVerification, error) {
	if id != "20261123T020000Z-dump" {
		return appliance.BackupVerification{}, fmt.Errorf("backup %s: %w", id, appliance.ErrNotFound)
	}
	return appliance.BackupVerification{ID: id, OK: !f.badVerify, Detail: "restored"}, nil
}

package appliance

import (
	"context"
	"io"
	"time"
)

// BackupVerification is the outcome of restoring a backup into a scratch server.
type BackupVerification struct {
	ID      string    `json:"id"`
	Target  string    `json:"target"`
	Time    time.Time `json:"time"`
	OK      bool      `json:"ok"`
	Detail  string    `json:"detail"`
	Seconds float64   `json:"seconds"`
}

// Backup is one backup (GET /api/v1/backups).
type Backup struct {
	ID        string              `json:"id"`
	Kind      string              `json:"kind"` // dump | increment | base
	Created   time.Time           `json:"created"`
	SizeBytes int64               `json:"size_bytes"`
	Targets   []string            `json:"targets"` // where it is: "this unit", "s3://..."
	Verified  *BackupVerification `json:"verified"`
	Databases []string            `json:"databases"`
	Files     int                 `json:"files,omitempty"` // a documents backup: how many documents
	// TakenOn names the unit that took it when that is the other unit of the pair (its mirror takes the
	// backups: a backup asked for on production is taken there).
	TakenOn string `json:"taken_on,omitempty"`
}

// ConfigRestored says what a configuration restore brought back, and what it left as the unit had it.
type ConfigRestored struct {
	ID          string   `json:"id"`
	Restored    []string `json:"restored"`
	NotRestored []string `json:"not_restored"`
}

// DocumentFile is one document in a documents backup (GET /api/v1/backups/{id}/documents).
type DocumentFile struct {
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

// DocumentsRestored is what a documents restore wrote.
type DocumentsRestored struct {
	Restored  int      `json:"restored"`
	Unchanged int      `json:"unchanged"` // there already, with the same content
	Beside    []string `json:"beside"`    // written beside a current file that differs (NAME.restored-DATE)
}

// BackupRestore asks for databases back from a backup (POST /api/v1/backups/{id}/restore).
type BackupRestore struct {
	Databases []string `json:"databases"` // none: every database in the backup, each under its own name
	Paths     []string `json:"paths"`     // a documents backup: the documents; none: every one
	Into      string   `json:"into"`      // one database only: restore it under this new name
	// Replace lets a restore take the name of a database that exists; that one is renamed and kept.
	Replace bool `json:"replace"`
}

// RestoredDatabase is one database brought back.
type RestoredDatabase struct {
	Database string `json:"database"`          // its name in the backup
	Into     string `json:"into"`              // its name now
	KeptAs   string `json:"kept_as,omitempty"` // the database it replaced, renamed and kept
	Tables   int    `json:"tables"`
	Rows     int64  `json:"rows"`
}

// BackupRestoreResult is the answer to a restore.
type BackupRestoreResult struct {
	ID        string             `json:"id"`
	Target    string             `json:"target"` // where it was read from
	Databases []RestoredDatabase `json:"databases"`
	Documents *DocumentsRestored `json:"documents,omitempty"`
	Seconds   float64            `json:"seconds"`
}

// BackupTarget is an offsite store (PUT /api/v1/backups/targets). Secrets are never shown again.
type BackupTarget struct {
	Kind     string `json:"kind"`     // "s3" or "sftp"
	Endpoint string `json:"endpoint"` // "host:port"
	// sftp: the account, its password or private key (OpenSSH PEM), the server's pinned host key
	// ("SHA256:...") and the directory.
	User       string `json:"user,omitempty"`
	Password   string `json:"password,omitempty"`
	PrivateKey string `json:"private_key,omitempty"`
	HostKey    string `json:"host_key,omitempty"`
	Path       string `json:"path,omitempty"`
	// s3
	Bucket    string `json:"bucket,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
	Region    string `json:"region,omitempty"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	Insecure  bool   `json:"insecure,omitempty"` // plain HTTP: only for a store on the office LAN
	// LimitKBps caps the upload rate to the target (KB/s), so backups leave room on the office's line; 0:
	// no limit.
	LimitKBps int `json:"limit_kbps,omitempty"`
}

// BackupRetention says which nightly dumps are kept, everywhere (PUT /api/v1/backups/retention): the last
// Daily, plus the newest of each of the last Weekly weeks and Monthly months.
type BackupRetention struct {
	Daily   int `json:"daily"`   // 1-365; 30 by default
	Weekly  int `json:"weekly"`  // 0-104
	Monthly int `json:"monthly"` // 0-120
}

// BackupTargetStatus is how the last copy to a target went.
type BackupTargetStatus struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"` // what the failure means and what to do, a sentence
	Error   string `json:"error,omitempty"`   // the server's or the network's own words
}

// BackupStatus is GET /api/v1/backups.
type BackupStatus struct {
	SetUp     bool   `json:"set_up"`    // a recovery identity exists
	Recipient string `json:"recipient"` // its public half
	Running   string `json:"running,omitempty"`
	// ProgressDone of ProgressTotal stored bytes of the running copy or restore (0 of 0: not measured).
	ProgressDone  int64               `json:"progress_done,omitempty"`
	ProgressTotal int64               `json:"progress_total,omitempty"`
	LastError     string              `json:"last_error,omitempty"`   // what the last failed backup's tools said
	LastProblem   string              `json:"last_problem,omitempty"` // the same in a sentence: what to do
	LastVerified  *BackupVerification `json:"last_verified"`
	// PointInTimeSince is the oldest base copy: a restore to any moment since is possible.
	PointInTimeSince *time.Time           `json:"point_in_time_since,omitempty"`
	Retention        BackupRetention      `json:"retention"`
	DocumentFolders  []string             `json:"document_folders"`
	Targets          []BackupTargetStatus `json:"targets"`
	Backups          []Backup             `json:"backups"`
}

// Backups are the database backups, taken on the mirror.
type Backups interface {
	Backups(ctx context.Context) (BackupStatus, error)
	// CreateIdentity makes the recovery identity and returns it, the only time it is shown.
	CreateIdentity(ctx context.Context) (string, error)
	// ImportIdentity sets the recovery identity of a recovery sheet, on a unit that has none (disaster
	// recovery onto a new unit).
	ImportIdentity(ctx context.Context, identity string) error
	SetTargets(ctx context.Context, ts []BackupTarget) error
	SetRetention(ctx context.Context, r BackupRetention) error
	// SetDocumentFolders sets the folders on the data array whose documents are backed up.
	SetDocumentFolders(ctx context.Context, folders []string) error
	DocumentFiles(ctx context.Context, id string) ([]DocumentFile, error)
	OpenDocument(ctx context.Context, id, path string) (io.ReadCloser, DocumentFile, error)
	RunBackup(ctx context.Context, kind string) (Backup, error)
	// RestoreConfig brings a backup's settings (the file shares and their accounts) back onto this unit,
	// in the disaster-recovery flow after the identity import.
	RestoreConfig(ctx context.Context, id string) (ConfigRestored, error)
	VerifyBackup(ctx context.Context, id string) (BackupVerification, error)
	// RestoreBackup brings databases back from backup id into the production database; the replaced
	// ones are kept under another name.
	RestoreBackup(ctx context.Context, id string, req BackupRestore) (BackupRestoreResult, error)
	// RestorePointInTime brings databases back as they were at a moment (a base copy and the archived WAL
	// after it), like RestoreBackup.
	RestorePointInTime(ctx context.Context, at time.Time, req BackupRestore) (BackupRestoreResult, error)
	// Export writes a current dump (pg_dump custom format, not encrypted: it goes to the admin) of one
	// database to w.
	Export(ctx context.Context, database string, w io.Writer) error
}

package appliance

import "context"

// FileShare is a folder of the office's documents offered to its PCs over SMB3 (\\unit\Name).
type FileShare struct {
	Name    string `json:"name"`              // the share's name as clients see it; its folder has the same name
	Comment string `json:"comment,omitempty"` // shown beside the share in the PCs' browse lists
	// ReadWrite and ReadOnly are the file accounts allowed in (nobody else is).
	ReadWrite []string `json:"read_write"`
	ReadOnly  []string `json:"read_only"`
	// Encrypt: clients must encrypt their traffic to this share (SMB 3 encryption); otherwise only
	// those that ask for it do.
	Encrypt bool `json:"encrypt,omitempty"`
}

// FileAccount is an account the office's PCs sign in to the shares with. Its password is kept only as
// the NT hash SMB's authentication needs, never in clear.
type FileAccount struct {
	Name string `json:"name"`
}

// SharesStatus is the file server: its shares, its accounts and whether it serves them.
type SharesStatus struct {
	// State: SharesServing, SharesStopped (this unit does not serve: Why says why), or SharesFailed.
	State    string        `json:"state"`
	Why      string        `json:"why,omitempty"`
	Shares   []FileShare   `json:"shares"`
	Accounts []FileAccount `json:"accounts"`
	// Folder is where the shares' folders are on the data array.
	Folder string `json:"folder"`
	// Changeable: the shares are changed on this unit (alone, or the active unit of its pair); the
	// standby takes the active unit's.
	Changeable bool `json:"changeable"`
	// Replication is the documents volume's replication to the partner (nil: the unit has no documents
	// volume, its data array was made before volumes existed, and the folders are on /data itself).
	Replication *Replication `json:"replication,omitempty"`
}

// Replication is the documents volume, replicated by DRBD to the partner unit.
type Replication struct {
	State      string   `json:"state"`      // "running", or "" before the volume is started
	Paired     bool     `json:"paired"`     // a partner to replicate with
	Role       string   `json:"role"`       // DRBD's: "Primary" (this unit writes) or "Secondary"
	Disk       string   `json:"disk"`       // this unit's copy: "UpToDate", "Inconsistent" (being synchronised), ...
	PeerDisk   string   `json:"peer_disk"`  // the partner's copy ("DUnknown" while not connected)
	Connection string   `json:"connection"` // "Connected", "SyncSource", "SyncTarget", "WFConnection", "StandAlone", ...
	OutOfSync  int64    `json:"out_of_sync_bytes"`
	Synced     *float64 `json:"synced_percent,omitempty"` // during a resynchronisation
	Mounted    bool     `json:"mounted"`                  // the documents filesystem is mounted here (this unit serves them)
	Encrypted  bool     `json:"encrypted"`                // the replication runs inside the pair's encrypted link (else on the LAN in clear)
	Problem    string   `json:"problem,omitempty"`        // what went wrong, in a sentence
}

// File server states.
const (
	SharesServing = "serving"
	SharesStopped = "stopped"
	SharesFailed  = "failed"
)

// Shares is the office's file server.
type Shares interface {
	Shares(ctx context.Context) SharesStatus
	// PutShare creates or changes a share (its folder is created; an existing folder and its files are kept).
	PutShare(ctx context.Context, s FileShare) error
	// DeleteShare stops offering a share. Its folder and files stay on the data array.
	DeleteShare(ctx context.Context, name string) error
	// PutAccount creates an account or sets its password.
	PutAccount(ctx context.Context, name, password string) error
	// DeleteAccount removes an account, also from every share's lists.
	DeleteAccount(ctx context.Context, name string) error
	// GrowDocuments gives the documents volume add bytes more from the data array's free space, online (in
	// a pair on both units).
	GrowDocuments(ctx context.Context, add int64) error
}

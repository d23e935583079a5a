package pair

import "errors"

// Errors of manual switchover.
var (
	ErrPeerActive  = errors.New("the other unit is active: make it stand down first")
	ErrPeerUnknown = errors.New("the other unit cannot be reached: it may still be serving; confirm to force")
	ErrPeerClaims  = errors.New("the other unit is being made active (an admin asked there at the same moment)")
	ErrNoAnswer    = errors.New("the other unit did not agree within 10 s: nothing changed; try again")
	ErrUnfit       = errors.New("this unit's copy of the data is not complete yet (the database or the documents are still being copied from the other unit, or their replication is down): try again when the pair page says they are in sync")
)

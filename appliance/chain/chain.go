// Package chain is the entry of a hash-chained log (appliance/state keeps them; the pair's heartbeats carry
// them to the other unit), without the store: the witness program, which speaks the pair's wire format,
// links no database.
package chain

import "encoding/json"

// Entry is an entry of a hash-chained log: its value, the hash of the entry before it and its own hash,
// SHA-256 of the previous hash and the value.
type Entry struct {
	Prev  string          `json:"prev"`
	Hash  string          `json:"hash"`
	Value json.RawMessage `json:"value"`
}

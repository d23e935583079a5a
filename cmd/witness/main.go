// Command witness is the third vote of an appliance pair: run it on any always-on office PC. It grants a
// short lease to one unit at a time; a unit may be active only while it holds the lease (or its peer vouches
// for it), so the two units can never both be active, whatever the network does.
//
//	witness -key-file /etc/lawbox-witness.key [-listen :7947] [-state FILE]
//
// The key file holds the pair key shown on the pair page (hex). Every message is authenticated with it and
// replays are dropped. The state file (by default the key file's name + ".state") remembers which unit
// was active last, so that a unit with older data is never made active after a restart of the witness,
// and the secret the witness keeps for each unit's encrypted disks (a unit asks for it at boot to unlock
// them): losing the file means the units unlock with their partner or the recovery sheet.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lawbox/appliance/appliance/pair/wire"
	"github.com/lawbox/appliance/appliance/witness"
)

func main() {
	listen := flag.String("listen", ":7947", "UDP address to answer on")
	keyFile := flag.String("key-file", "", "file holding the pair key (hex)")
	stateFile := flag.String("state", "", "file remembering the last active unit (default: the key file + .state)")
	flag.Parse()
	if *stateFile == "" {
		*stateFile = *keyFile + ".state"
	}
	raw, err := os.ReadFile(*keyFile)
	if err != nil {
		log.Fatalf("witness: read key: %v", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) < 16 {
		log.Fatalf("witness: the key file must hold at least 16 bytes in hex")
	}
	conn, err := net.ListenPacket("udp", *listen)
	if err != nil {
		log.Fatalf("witness: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lg := slog.New(slog.NewTextHandler(os.Stderr, nil))
	lg.Info("witness answering", "listen", conn.LocalAddr().String())
	s := &witness.WitnessServer{Key: key, Log: lg, Now: time.Now, Name: wire.WitnessName, StateFile: *stateFile}
	if err := s.Load(); err != nil {
		log.Fatalf("witness: %v", err)
	}
	if err := s.Serve(ctx, conn); err != nil {
		log.Fatalf("witness: %v", err)
	}
}

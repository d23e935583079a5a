package main

import (
	"log/slog"
	"sync"
	"time"

	"github.com/lawbox/appliance/hw/sysinit"
)

// trialDeadline is how long a firmware slot on trial has to become healthy (arrays, web UI, database in
// its role, pair heartbeats) before PID 1 restarts the unit and the boot loader counts one more try.
var trialDeadline = 10 * time.Minute

// startTrial arms PID 1's deadline when the boot loader says this boot tries a new slot (it renamed the
// slot's tries counter and set LoaderBootCountPath). It does not depend on the daemon: a firmware whose
// services never start is restarted all the same, and after its tries the boot loader goes back to the
// previous slot. passed disarms it: the daemon found the unit healthy and blessed the slot.
func startTrial(log *slog.Logger, request func(sysinit.Action)) (passed func()) {
	entry, err := sysinit.LoaderVar(sysinit.EFIVars, "LoaderBootCountPath")
	if err != nil {
		log.Error("cannot tell whether this boot tries a new firmware", "err", err)
	}
	if entry == "" {
		return func() {}
	}
	log.Warn("this boot tries a new firmware: kept only if the unit is healthy in time", "entry", entry, "deadline", trialDeadline)
	t := time.AfterFunc(trialDeadline, func() {
		log.Error("the firmware on trial is not healthy in time: restarting; the boot loader goes back to the previous firmware once its tries are spent", "entry", entry, "deadline", trialDeadline)
		request(sysinit.Reboot)
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			if t.Stop() {
				log.Info("the firmware on trial is healthy: kept", "entry", entry)
			}
		})
	}
}

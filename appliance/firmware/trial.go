package firmware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance"
)

// Run watches this boot: on a trial it blesses the slot once the unit is healthy; otherwise it tells how
// the last update ended when the unit came back on the slot it ran before.
func (u *Updater) Run(ctx context.Context) error {
	count, err := u.BootCount()
	if err != nil {
		u.Boot.Log.Warn("firmware: cannot read the boot loader's try counter", "err", err)
	}
	var run appliance.FirmwareRun
	_ = u.Store.GetJSON(bucket, runKey, &run)
	if count == "" {
		u.cameBack(ctx, run)
		u.kept()
		<-ctx.Done()
		return nil
	}
	u.mu.Lock()
	u.trial = true
	u.mu.Unlock()
	if run.Version != u.Boot.Version {
		run = appliance.FirmwareRun{Version: u.Boot.Version, Build: u.Build, By: "boot loader", Started: time.Now().UTC()}
	}
	run.State, run.Reason = appliance.FirmwareTrying, ""
	_ = u.save(run)
	u.Boot.Log.Warn("firmware on trial: kept once the unit is healthy", "version", u.Boot.Version, "entry", count)
	every := u.Every
	if every == 0 {
		every = 5 * time.Second
	}
	for {
		err := u.healthy(ctx)
		if err == nil {
			if err = u.bless(ctx); err == nil {
				break
			}
		}
		if reason := "not healthy yet: " + err.Error(); reason != run.Reason {
			run.Reason = reason
			_ = u.save(run)
			u.Boot.Log.Info("firmware on trial", "reason", reason)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
	run.State, run.Reason, run.Finished = appliance.FirmwareBlessed, "", time.Now().UTC()
	_ = u.save(run)
	u.mu.Lock()
	u.trial = false
	u.mu.Unlock()
	u.Boot.Log.Info("firmware blessed: the unit keeps this version", "version", u.Boot.Version)
	if err := u.Blessed(ctx); err != nil {
		u.Boot.Log.Error("firmware: could not tell PID 1 the trial is over", "err", err)
	}
	u.kept()
	<-ctx.Done()
	return nil
}

func (u *Updater) kept() {
	if u.Kept == nil {
		return
	}
	if err := u.Kept(); err != nil {
		u.Boot.Log.Error("firmware kept: the settings kept for it alone are not sealed yet", "err", err)
	}
}

// goingBack tells GoingBack: a failure is logged, not a reason to stay on a firmware the admin leaves.
func (u *Updater) goingBack() {
	if u.GoingBack == nil {
		return
	}
	if err := u.GoingBack(); err != nil {
		u.Boot.Log.Error("firmware: the sealed settings could not all be written for the older firmware; it may not read them", "err", err)
	}
}

func (u *Updater) healthy(ctx context.Context) error {
	for _, c := range u.Health {
		if err := c.Check(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	return nil
}

// bless takes the tries counter off the running slot on every partition: the boot loader boots it from
// now on without counting.
func (u *Updater) bless(ctx context.Context) error {
	return u.rename(ctx, u.Boot.Version, func(e Entry) string {
		if e.Blessed() {
			return ""
		}
		return Slot(e.Version)
	})
}

// rename renames version's slot on every member partition to what to says ("" leaves it).
func (u *Updater) rename(ctx context.Context, version string, to func(Entry) string) error {
	parts, err := u.members(ctx)
	if err != nil {
		return err
	}
	u.Boot.mu.Lock()
	defer u.Boot.mu.Unlock()
	defer u.changed()
	var errs []error
	for _, p := range parts {
		names, err := u.Boot.FAT.List(ctx, p, strings.TrimSuffix(linux, "/"))
		e, ok := find(names, version)
		if err != nil || !ok {
			continue
		}
		if name := to(e); name != "" {
			if err := u.Boot.FAT.Rename(ctx, p, linux+e.Name, linux+name); err != nil {
				errs = append(errs, fmt.Errorf("rename %s on %s: %w", e.Name, p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// cameBack records how an update ended when this boot runs another version than the update's, and
// marks its slot failed on every partition (the boot loader did so on the one it booted from only).
func (u *Updater) cameBack(ctx context.Context, run appliance.FirmwareRun) {
	if run.Version == "" || run.Version == u.Boot.Version {
		return
	}
	switch run.State {
	case appliance.FirmwareWriting:
		run.State = appliance.FirmwareInterrupted
		run.Reason = fmt.Sprintf("the unit stopped while version %s was being written; it runs %s, as before", run.Version, u.Boot.Version)
	case appliance.FirmwareRestarting, appliance.FirmwareTrying:
		why := strings.TrimPrefix(run.Reason, "not healthy yet: ")
		if run.State == appliance.FirmwareRestarting || why == "" {
			why = "it did not start its services"
		}
		run.State = appliance.FirmwareRolledBack
		run.Reason = fmt.Sprintf("version %s did not become healthy in %d tries (%s); the unit went back to %s by itself", run.Version, Tries, why, u.Boot.Version)
	default:
		return
	}
	run.Finished = time.Now().UTC()
	u.Boot.Log.Error("firmware update did not take", "version", run.Version, "reason", run.Reason)
	_ = u.save(run)
	if err := u.rename(ctx, run.Version, func(e Entry) string {
		if e.Blessed() || e.Failed() {
			return ""
		}
		return failed(e.Version)
	}); err != nil {
		u.Boot.Log.Warn("firmware: could not mark the failed slot on every disk", "err", err)
	}
}

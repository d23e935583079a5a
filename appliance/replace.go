package appliance

// Replacement advice: which disk to pull, and which must not be pulled now. The storage page follows it, so
// that its guide never leads someone to pull the last complete copy of an array.

// What to do with a disk that should be replaced.
const (
	PullNow   = "now"   // pull it: every array it is in keeps a complete copy without it
	PullAfter = "after" // not now: it is the only complete copy while a rebuild runs; replace it after
	PullNever = "never" // not now: it is the last complete copy; add a new disk and let it rebuild first
)

// DiskAdvice is what the storage page says about one disk.
type DiskAdvice struct {
	Serial  string
	Slot    string
	Replace bool   // SMART says to replace it, or an array marked it faulty
	Pull    string // for a disk to replace: PullNow, PullAfter or PullNever
	// Keep: pulling it now would fail an array (it holds the last complete copy of some data), whether or
	// not it is to be replaced.
	Keep   bool
	Arrays []string // the arrays that need it, when Keep
	Locate string   // the disk's locate light: "" none, "off", "on" (StorageDisk.Locate)
}

// ReplacementAdvice says, for every disk of st, whether it is to be replaced and whether it may be pulled
// now. health maps a disk's serial to its SMART health ("replace" and "failed" mean replace it).
func ReplacementAdvice(st StorageStatus, health map[string]string) []DiskAdvice {
	var out []DiskAdvice
	for _, d := range st.Disks {
		a := DiskAdvice{Serial: d.Serial, Slot: d.Where(), Locate: d.Locate}
		h := health[d.Serial]
		a.Replace = h == "replace" || h == "failed" || d.State == "faulty"
		rebuilding := false
		for _, ar := range st.Arrays {
			for _, m := range ar.Members {
				a.Replace = a.Replace || (m.Serial == d.Serial && m.State == MemberFaulty)
			}
			need, rb := needed(ar, d.Serial)
			if need {
				a.Keep = true
				a.Arrays = append(a.Arrays, ar.Name)
				rebuilding = rebuilding || rb
			}
		}
		switch {
		case !a.Replace:
		case !a.Keep:
			a.Pull = PullNow
		case rebuilding:
			a.Pull = PullAfter
		default:
			a.Pull = PullNever
		}
		out = append(out, a)
	}
	return out
}

// needed says whether array ar fails without disk serial (it holds a complete copy nothing else holds),
// and whether a rebuild is under way that will end that.
func needed(ar Array, serial string) (bool, bool) {
	var mine *Member
	others, rebuilding := 0, false
	for i, m := range ar.Members {
		switch {
		case m.Serial == serial:
			mine = &ar.Members[i]
		case m.State == MemberInSync:
			others++
		case m.State == MemberRebuilding:
			rebuilding = true
		}
	}
	if mine == nil || mine.State != MemberInSync {
		return false, false // not in it, or holds no complete copy
	}
	// A reshape (growing onto a new disk) rewrites every stripe: a member pulled meanwhile leaves it degraded
	// halfway, so it counts as a rebuild that ends it.
	rebuilding = rebuilding || ar.State == ArrayRebuilding || ar.State == ArrayGrowing
	switch ar.Level {
	case "raid1":
		return others == 0, rebuilding
	default: // raid5 (and anything with one parity): it survives the loss of one member, if none is missing yet
		return ar.State == ArrayDegraded || ar.State == ArrayFailed || rebuilding, rebuilding
	}
}

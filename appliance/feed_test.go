package appliance

import "testing"

// A watcher sees the value it read, and wakes once the value changes from it; setting the same value
// wakes nobody.
func TestFeed(t *testing.T) {
	var f Feed[PairRole]
	if r := f.Get(); r != "" || r.Serves() || r.Paired() {
		t.Fatalf("zero feed: %q serves %v paired %v", r, r.Serves(), r.Paired())
	}
	if !f.Set(PairSingle) {
		t.Fatal("Set(single) on the zero feed changed nothing")
	}
	r, changed := f.Watch()
	if r != PairSingle || !r.Serves() || r.Paired() {
		t.Fatalf("Watch = %q", r)
	}
	if f.Set(PairSingle) {
		t.Error("Set of the same value reported a change")
	}
	select {
	case <-changed:
		t.Fatal("woken by a Set of the same value")
	default:
	}
	f.Set(PairStandby)
	select {
	case <-changed:
	default:
		t.Fatal("not woken by a change")
	}
	if r, _ := f.Watch(); r != PairStandby || r.Serves() || !r.Paired() {
		t.Errorf("after the change: %q", r)
	}
}

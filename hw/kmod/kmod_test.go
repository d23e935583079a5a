package kmod

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	in := "# comment\ncrc32c_generic\n\n  virtio_blk  # disks\nraid456\nbonding max_bonds=0\n"
	got, err := ParseList(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"crc32c_generic", "virtio_blk", "raid456", "bonding max_bonds=0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParseList = %v, want %v", got, want)
	}
}

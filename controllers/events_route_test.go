package controllers

import (
	"testing"

	"github.com/avon-ai/data-import-operator/internal/receiver"
	"github.com/avon-ai/data-import-operator/internal/shard"
)

// What the elector says becomes the receiver's route: served here, handed to the holder
// at its published address, or nobody to hand it to (503, the sender retries).
func TestRouteOf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		owns   bool
		holder shard.Holder
		want   receiver.Route
	}{
		{name: "served here", owns: true, holder: shard.Holder{Identity: "a", Address: "10.0.0.1:9292", Self: true}, want: receiver.Route{Local: true}},
		{name: "held by another replica", holder: shard.Holder{Identity: "b", Address: "10.0.0.2:9292"}, want: receiver.Route{Owner: "10.0.0.2:9292"}},
		{name: "held here but being handed back", holder: shard.Holder{Identity: "a", Address: "10.0.0.1:9292", Self: true}, want: receiver.Route{}},
		{name: "free or expired shard", holder: shard.Holder{}, want: receiver.Route{}},
		{name: "holder published no address", holder: shard.Holder{Identity: "b"}, want: receiver.Route{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := routeOf(tc.owns, tc.holder); got != tc.want {
				t.Errorf("routeOf(%v, %+v) = %+v, want %+v", tc.owns, tc.holder, got, tc.want)
			}
		})
	}
}

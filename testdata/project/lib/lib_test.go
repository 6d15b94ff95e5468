package lib

import (
	"testing"

	"example.com/testonly"
)

func TestDescribe(t *testing.T) {
	want := "Upper/Case+Inner+v1.1.0 legacy 2 abcdef123456 unpruned"
	if p := platform(); p != "" {
		want += " " + p
	}
	if got := Describe(); !testonly.Equal(got, want) {
		t.Fatalf("Describe() = %q, want %q", got, want)
	}
}

package workflows

import "testing"

// TestMeasureFloorOrderFree: the floor of the same baseline values is the
// same bit for bit whatever order the runs finished in (a clean-clone CI
// run once saw the mean differ in its last bit).
func TestMeasureFloorOrderFree(t *testing.T) {
	vals := []float64{2.4528347476522008, 2.533576510391987, 2.4932767067905055} // sums that differ by order
	want := measureFloor(vals, 2)
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, p := range perms {
		got := measureFloor([]float64{vals[p[0]], vals[p[1]], vals[p[2]]}, 2)
		if got != want {
			t.Fatalf("order %v: %+v, want %+v", p, got, want)
		}
	}
}

package volume

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/dicomio"
)

// synthSeries builds a series of n slices, spacing mm apart along the
// orientation's normal, with the given attributes.
func synthSeries(num int, desc, modality, kernel string, imageType []string, iop [6]float64, n int, spacing, thickness float64) *Series {
	sy := newSynth(modality)
	sy.in = &dicomio.Instance{
		SeriesInstanceUID: fmt.Sprintf("1.2.%d", num), StudyInstanceUID: "1.2",
		Modality: modality, SeriesNumber: num, SeriesDescription: desc,
	}
	sy.in.ConvolutionKernel = kernel
	sy.in.ImageType = imageType
	sy.iop = iop
	n3 := unit(cross(vec(iop[0:3]), vec(iop[3:6])))
	var ss []*slice
	for k := range n {
		s := sy.slice(fmt.Sprintf("s%d-%d", num, k), scale(n3, spacing*float64(k)), constant(1))
		s.thickness, s.imageType = thickness, imageType
		ss = append(ss, s)
	}
	return buildSeries(ss)
}

func TestChoose(t *testing.T) {
	axial := [6]float64{1, 0, 0, 0, 1, 0}
	coronal := [6]float64{1, 0, 0, 0, 0, -1}
	op := []string{"ORIGINAL", "PRIMARY", "AXIAL"}
	series := []*Series{
		synthSeries(1, "Scout", "CT", "", []string{"ORIGINAL", "PRIMARY", "LOCALIZER"}, coronal, 2, 1, 1),
		synthSeries(2, "Head bone", "CT", "H70h", op, axial, 40, 2.5, 2.5),
		synthSeries(3, "Head soft", "CT", "H30s", op, axial, 36, 2.5, 2.5),
		synthSeries(4, "Head thin", "CT", "H30s", op, axial, 100, 0.3, 0.3),
		synthSeries(5, "Coronal MPR", "CT", "H30s", op, coronal, 80, 2, 2),
		synthSeries(6, "MIP", "CT", "H30s", []string{"DERIVED", "SECONDARY", "AXIAL"}, axial, 60, 3, 3),
		synthSeries(7, "Dose report", "SR", "", nil, axial, 10, 3, 3),
	}
	st, why, err := Choose(&Collection{Series: series})
	if err != nil {
		t.Fatal(err)
	}
	// Series 2 covers more, but a bone kernel loses to a soft-tissue one.
	if st.Description != "Head soft" {
		t.Fatalf("chose %q: %s", st.Description, why)
	}
	for _, want := range []string{
		`series 1 "Scout": a localizer`,
		`series 2 "Head bone": bone/sharp kernel H70h`,
		`series 4 "Head thin": slice thickness 0.3 mm`,
		`series 5 "Coronal MPR": not axial`,
		`series 6 "MIP": not an original primary`,
		`series 7 "Dose report": modality "SR"`,
	} {
		if !strings.Contains(why, want) {
			t.Errorf("reason lacks %q:\n%s", want, why)
		}
	}
	// The thickness range is an option.
	st, _, err = ChooseWith(&Collection{Series: series}, ChooseOptions{MinThickness: 0.25})
	if err != nil || st.Description != "Head soft" {
		t.Fatalf("with thin slices allowed: %v %v", st, err)
	}
	// Only bone kernels: the bone kernel is chosen.
	st, _, err = Choose(&Collection{Series: series[1:2]})
	if err != nil || st.Description != "Head bone" {
		t.Fatalf("bone only: %v", err)
	}
	// Nothing fit.
	_, _, err = Choose(&Collection{Series: []*Series{series[0], series[6]}})
	if !errors.Is(err, ErrNoStack) || !strings.Contains(err.Error(), "localizer") {
		t.Fatalf("error %v", err)
	}
}

func TestSharpKernel(t *testing.T) {
	for k, want := range map[string]bool{
		"": false, "STANDARD": false, "SOFT": false, "UB": false, "H30s": false, "Hr40": false, "B31f": false, "FC21": false,
		"BONE": true, "BONEPLUS": true, "LUNG": true, "EDGE": true, "H70h": true, "Hr68": true, "B70f": true, "Br64": true,
		"Qr69": true, `I70f\3`: true, "YC": false,
	} {
		if got := sharpKernel(k); got != want {
			t.Errorf("sharpKernel(%q) = %v, want %v", k, got, want)
		}
	}
}

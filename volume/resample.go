package volume

import "math"

// shift writes into dst (cols×rows, row by row) the image src moved within
// its plane: dst(i, j) = src(i − si, j − sj), bilinear between the four
// neighbours; a pixel whose neighbours fall outside src gets fill. The
// naive reference for one pixel:
//
//	x, y := float64(i)-si, float64(j)-sj
//	x0, y0 := floor(x), floor(y); fx, fy := x-x0, y-y0
//	dst = (1-fx)(1-fy)·src(x0,y0) + fx(1-fy)·src(x0+1,y0) + (1-fx)fy·src(x0,y0+1) + fx·fy·src(x0+1,y0+1)
//
// Because the shift is the same for every pixel, the weights are computed
// once.
func shift(dst, src []float32, cols, rows int, si, sj float64, fill float32) {
	shiftInto(dst, cols, rows, src, cols, rows, si, sj, fill, false)
}

// shiftInto is shift into a destination of another size, dcols×drows:
// dst(i, j) = src(i − si, j − sj) for i < dcols, j < drows, src being
// cols×rows. With rowZero, a pixel whose source row j − sj lies between
// −1 and 0 takes row 0 (as dcm2niix's shear correction does on that side)
// rather than fill.
func shiftInto(dst []float32, dcols, drows int, src []float32, cols, rows int, si, sj float64, fill float32, rowZero bool) {
	ox, oy := math.Floor(-si), math.Floor(-sj)
	fx, fy := -si-ox, -sj-oy
	dx, dy := int(ox), int(oy)
	w00 := float32((1 - fx) * (1 - fy))
	w10 := float32(fx * (1 - fy))
	w01 := float32((1 - fx) * fy)
	w11 := float32(fx * fy)
	needX, needY := 0, 0 // extra neighbour needed when the weight is not 0
	if fx > 0 {
		needX = 1
	}
	if fy > 0 {
		needY = 1
	}
	for j := range drows {
		y0 := j + dy
		row := dst[j*dcols : (j+1)*dcols]
		if rowZero && y0 == -1 && needY == 1 && rows > 0 {
			// Row 0 alone, horizontally interpolated as any other.
			a := src[:cols]
			wa, wb := w00+w01, w10+w11
			for i := range row {
				x0 := i + dx
				if x0 < 0 || x0+needX >= cols {
					row[i] = fill
					continue
				}
				row[i] = wa*a[x0] + wb*a[x0+needX]
			}
			continue
		}
		if y0 < 0 || y0+needY >= rows {
			for i := range row {
				row[i] = fill
			}
			continue
		}
		a := src[y0*cols : (y0+1)*cols]
		b := a
		if needY == 1 {
			b = src[(y0+1)*cols : (y0+2)*cols]
		}
		for i := range row {
			x0 := i + dx
			if x0 < 0 || x0+needX >= cols {
				row[i] = fill
				continue
			}
			x1 := x0 + needX
			row[i] = w00*a[x0] + w10*a[x1] + w01*b[x0] + w11*b[x1]
		}
	}
}

// eqGrid returns the equal-spacing grid for slices at coords (increasing,
// relative or absolute) as dcm2niix's `_Eq_` output has it: the step is
// the smallest distance between neighbouring slices, and the grid starts
// at the first slice with
//
//	n = ceil((span − lastGap/2) / step)
//
// slices (span the distance from the first slice to the last, lastGap the
// distance between the last two), so that the grid ends within half the
// last gap of the last slice and a slice beyond that is not kept; when n
// would exceed twice the original slice count, n is that and the step is
// span/(n−1) (the grid then ends at the last slice).
func eqGrid(coords []float64) (step float64, n int) {
	nk := len(coords)
	if nk < 2 {
		return 0, 1
	}
	span := coords[nk-1] - coords[0]
	step = minStep(coords)
	if !(span > 0) || !(step > 0) {
		return 0, 1
	}
	last := coords[nk-1] - coords[nk-2]
	// dcm2niix computes in float32: an exact whole number of steps must
	// not round up to one more.
	n = int(math.Ceil((span-last/2)/step - 1e-4))
	if n > 2*nk {
		n = 2 * nk
		step = span / float64(n-1)
	}
	return step, max(n, 1)
}

// equalize resamples nt volumes of nk slices (each plane values, the k-th
// at coordinate coords[k] along the normal, increasing) onto nk2 slices
// step apart starting at coords[0] (see eqGrid). Each new slice is the
// linear interpolation of the two original slices around it, a grid
// point beyond the last slice taking the last slice:
//
//	z := coords[0] + m·step; coords[k] ≤ z ≤ coords[k+1]; w := (z−coords[k])/(coords[k+1]−coords[k])
//	out[m] = (1−w)·in[k] + w·in[k+1]
//
// It returns the new data.
func equalize(data []float32, plane, nk, nt int, coords []float64, step float64, nk2 int) []float32 {
	out := make([]float32, plane*nk2*nt)
	for t := range nt {
		in := data[t*nk*plane : (t+1)*nk*plane]
		dst := out[t*nk2*plane : (t+1)*nk2*plane]
		k := 0
		for m := range nk2 {
			z := coords[0] + float64(m)*step
			for k < nk-2 && coords[k+1] < z {
				k++
			}
			w := 0.0
			if g := coords[k+1] - coords[k]; g > 0 {
				w = math.Min(math.Max((z-coords[k])/g, 0), 1)
			}
			a := in[k*plane : (k+1)*plane]
			b := in[(k+1)*plane : (k+2)*plane]
			o := dst[m*plane : (m+1)*plane]
			wa, wb := float32(1-w), float32(w)
			switch {
			case wb == 0:
				copy(o, a)
			case wa == 0:
				copy(o, b)
			default:
				for i := range o {
					o[i] = wa*a[i] + wb*b[i]
				}
			}
		}
	}
	return out
}

package phantom

import (
	"math"
	"math/rand/v2"
)

// Tissue classes of the noise-free model (for tests and the mask).
const (
	tAir = iota
	tScalp
	tBone
	tCSF // subarachnoid space, sulci, fissure, ventricles
	tGrey
	tWhite
	tDeep  // thalami
	tDural // dural venous sinuses and the falx: blood-dense, not a lesion
)

// head is the implicit model of one seed's head, in a head frame: LPS
// axes turned by a few degrees, origin at the head's centre, mm.
type head struct {
	centre   [3]float64 // LPS
	toHead   mat3       // LPS offsets to the head frame
	semi     [3]float64 // outer (skin) semi-axes: left, posterior, superior
	outer    wave       // shape perturbation over directions
	scalp    wave       // scalp thickness variation
	skull    wave       // skull thickness variation
	scalpT   float64
	skullT   float64
	boneHU   float64
	csfT     float64 // subarachnoid CSF under the inner skull
	gyri     [3]float64
	gyriPh   [3]float64
	vent     float64    // ventricle scale
	ventOff  [3]float64 // ventricle system centre
	ventWave wave
	// Dural venous sinuses and falx (normal anatomy as dense as a bleed,
	// along the inner skull: what a model must not call a subdural).
	sinusHU float64 // venous blood
	sssW    float64 // superior sagittal sinus: half-width at the inner table
	sssD    float64 // and depth below it (a triangle in cross-section)
	transZ  float64 // transverse sinuses: height in the head frame
	transW  float64 // half-height of their band
	transD  float64 // depth below the inner table
	falxHU  float64
	lesions []*lesion
	maxR    float64
	zRange  [2]float64 // the grid's LPS z extent
	grid    [2][3]float64
}

type lesion struct {
	kind     string
	label    uint8
	targetML float64
	hu       float64
	tex      wave

	// ICH
	centre [3]float64 // head frame
	rot    mat3       // head frame to lesion frame
	semi   [3]float64
	edge   wave
	reach  float64 // no voxel beyond this distance from centre is inside
	edema  bool

	// SDH
	dir      [3]float64 // unit direction of its thickest point
	side     float64    // +1 left, -1 right
	cosTheta float64
	theta    float64
	thick    float64
}

func newHead(rng *rand.Rand, p *Phantom) *head {
	h := &head{}
	h.semi = [3]float64{uniform(rng, 68, 78), uniform(rng, 86, 98), uniform(rng, 80, 92)}
	h.maxR = 1.1 * max(h.semi[0], h.semi[1], h.semi[2])
	halfZ := float64(p.Size[0]-1) / 2 * p.Spacing[0]
	h.zRange = [2]float64{-halfZ, halfZ}
	h.grid[0] = p.Position(0, 0, 0)
	h.grid[1] = p.Position(float64(p.Size[0]-1), float64(p.Size[1]-1), float64(p.Size[2]-1))
	zc := max(halfZ-h.semi[2]-3, -25) + uniform(rng, -3, 3)
	h.centre = [3]float64{uniform(rng, -3, 3), uniform(rng, -4, 4), zc}
	deg := math.Pi / 180
	r := rotation(uniform(rng, -6, 6)*deg, uniform(rng, -3, 3)*deg, uniform(rng, -5, 5)*deg)
	// toHead is the inverse (transpose) of the head's rotation.
	for i := range 3 {
		for j := range 3 {
			h.toHead[i][j] = r[j][i]
		}
	}
	h.outer = newWave(rng, 5, 1.5, 3, 0.035)
	h.scalp = newWave(rng, 3, 1.5, 3, 0.3)
	h.skull = newWave(rng, 4, 2, 4, 0.25)
	h.scalpT = uniform(rng, 3.5, 6)
	h.skullT = uniform(rng, 5, 7.5)
	h.boneHU = uniform(rng, 0.9, 1.05)
	h.csfT = uniform(rng, 0.8, 2.2)
	for a := range 3 {
		h.gyri[a] = 2 * math.Pi / uniform(rng, 10, 16)
		h.gyriPh[a] = 2 * math.Pi * rng.Float64()
	}
	h.vent = uniform(rng, 0.75, 1.4)
	h.ventOff = [3]float64{uniform(rng, -1, 1), uniform(rng, -3, 3), uniform(rng, 8, 14)}
	h.ventWave = newWave(rng, 3, 0.05, 0.12, 0.08)
	// The dural structures draw from a generator of their own, so that
	// every other draw (and so each seed's anatomy and lesions) stays
	// what it was before they were added.
	dr := rand.New(rand.NewPCG(p.Seed, 0x64757261))
	h.sinusHU = uniform(dr, 42, 62)
	h.sssW = uniform(dr, 4, 6)
	h.sssD = uniform(dr, 6, 9)
	h.transZ = uniform(dr, -32, -20)
	h.transW = uniform(dr, 2.5, 4)
	h.transD = uniform(dr, 4, 6.5)
	h.falxHU = uniform(dr, 35, 60)
	return h
}

// dural reports whether head-frame q (direction u, depth brain below the
// inner table) is in a dural venous sinus: the superior sagittal sinus,
// a triangle under the inner table along the midline from the frontal
// bone over the vertex to the occiput, widening backwards; the
// transverse sinuses, a band along the inner occipital bone at the
// tentorium's height from the torcula out to the sides.
func (h *head) dural(q, u [3]float64, brain float64) bool {
	if brain < 0 {
		return false
	}
	mx := h.ventOff[0]
	if brain < h.sssD && (u[2] > -0.1 || (u[1] > 0.3 && q[2] > h.transZ)) {
		w := h.sssW * (1 + 0.35*max(u[1], 0)) * (1 - brain/h.sssD)
		if math.Abs(q[0]-mx) < w {
			return true
		}
	}
	return u[1] > 0.2 && brain < h.transD && math.Abs(q[2]-h.transZ-4*math.Abs(u[0])) < h.transW*(1-0.5*brain/h.transD)
}

// frame returns the head-frame position of an LPS point.
func (h *head) frame(pos [3]float64) [3]float64 {
	return h.toHead.mul([3]float64{pos[0] - h.centre[0], pos[1] - h.centre[1], pos[2] - h.centre[2]})
}

// depths returns, for head-frame q, the radial depth below the skin and
// below the inner table of the skull (negative outside), the scalp and
// skull thickness there, and q's direction.
func (h *head) depths(q [3]float64) (skin, brain, scalpT, skullT float64, u [3]float64) {
	r := norm(q)
	if r < 1e-9 {
		u = [3]float64{0, 0, 1}
	} else {
		u = [3]float64{q[0] / r, q[1] / r, q[2] / r}
	}
	e := u[0]*u[0]/(h.semi[0]*h.semi[0]) + u[1]*u[1]/(h.semi[1]*h.semi[1]) + u[2]*u[2]/(h.semi[2]*h.semi[2])
	rs := (1 + h.outer.at(u)) / math.Sqrt(e)
	skin = rs - r
	scalpT = h.scalpT * (1 + h.scalp.at(u))
	skullT = h.skullT * (1 + h.skull.at(u))
	return skin, skin - scalpT - skullT, scalpT, skullT, u
}

func inEllipsoid(q, c, s [3]float64) bool {
	x, y, z := (q[0]-c[0])/s[0], (q[1]-c[1])/s[1], (q[2]-c[2])/s[2]
	return x*x+y*y+z*z < 1
}

// ventricle reports whether head-frame q is in the ventricles: butterfly
// lateral ventricles (bodies tilted outwards at the top, a caudate
// indentation at the lower outer edge), occipital horns and a slit of a
// third ventricle.
func (h *head) ventricle(q [3]float64) bool {
	v := h.vent
	o := h.ventOff
	l := [3]float64{q[0] - o[0], q[1] - o[1], q[2] - o[2]}
	if math.Abs(l[0]) > 30 || math.Abs(l[1]) > 45 || math.Abs(l[2]) > 35 {
		return false
	}
	wob := 1 + h.ventWave.at(l)
	if math.Abs(l[0]) < 1.4*v && inEllipsoid(l, [3]float64{0, 6, -16}, [3]float64{10, 12, 8}) {
		return true // third ventricle
	}
	s := 1.0
	if l[0] < 0 {
		s = -1
	}
	// Body and frontal horn, tilted by 22°: the top outwards.
	cx := s * (8 + 2*v)
	dx, dz := l[0]-cx, l[2]
	const ct, st = 0.927, 0.375
	bx := ct*dx - s*st*dz
	bz := s*st*dx + ct*dz
	body := [3]float64{bx, l[1], bz}
	if inEllipsoid(body, [3]float64{}, [3]float64{5.5 * v * wob, 28 * wob, 11}) {
		caud := [3]float64{s * (cx + 7), -10, -7}
		if !inEllipsoid(l, caud, [3]float64{6, 11, 7}) {
			return true
		}
	}
	// Occipital horn.
	return inEllipsoid(l, [3]float64{s * (cx + 4), 26, -5}, [3]float64{3.5 * v * wob, 13, 5})
}

func (h *head) thalamus(q [3]float64) bool {
	o := h.ventOff
	l := [3]float64{math.Abs(q[0] - o[0]), q[1] - o[1], q[2] - o[2]}
	return inEllipsoid(l, [3]float64{9, 8, -16}, [3]float64{7.5, 12, 8})
}

// tissue classifies head-frame q and gives its noise-free value, before
// lesions.
func (h *head) tissue(q [3]float64) (class int, hu, brain float64, u [3]float64) {
	if norm(q) > h.maxR*1.05 {
		return tAir, huAir, -100, u
	}
	skin, brain, scalpT, skullT, u := h.depths(q)
	switch {
	case skin < 0:
		return tAir, huAir, brain, u
	case skin < scalpT:
		return tScalp, huScalp, brain, u
	case brain < 0:
		// Dense outer and inner tables, lighter diploe.
		t := 2*(skin-scalpT)/skullT - 1
		return tBone, h.boneHU * (850 + 600*t*t), brain, u
	case h.dural(q, u, brain):
		return tDural, h.sinusHU, brain, u
	case brain < h.csfT:
		return tCSF, huCSF, brain, u
	}
	if d := math.Abs(q[0] - h.ventOff[0]); d < 1.1 && q[2] > -15 {
		if d < 0.5 {
			return tDural, h.falxHU, brain, u // the falx, in the fissure
		}
		return tCSF, huCSF, brain, u // interhemispheric fissure
	}
	if h.ventricle(q) {
		return tCSF, huCSF, brain, u
	}
	if h.thalamus(q) {
		return tDeep, huDeep, brain, u
	}
	g := math.Sin(q[0]*h.gyri[0]+h.gyriPh[0]) * math.Sin(q[1]*h.gyri[1]+h.gyriPh[1]) * math.Sin(q[2]*h.gyri[2]+h.gyriPh[2])
	cortex := brain - h.csfT
	if g > 0.55 && cortex < 7 {
		return tCSF, huCSF, brain, u // a sulcus
	}
	if cortex < 3.5+1.8*g {
		return tGrey, huGrey, brain, u
	}
	return tWhite, huWhite, brain, u
}

// slice fills the noise-free values, labels and lesion owners of slice d.
func (h *head) slice(p *Phantom, d int, hu []float32, lab []uint8, owner []int8) {
	H, W := p.Size[1], p.Size[2]
	for y := range H {
		for x := range W {
			q := h.frame(p.Position(float64(d), float64(y), float64(x)))
			class, v, brain, u := h.tissue(q)
			i := y*W + x
			if class >= tCSF {
				for li, l := range h.lesions {
					in, edema := l.contains(q, u, brain)
					if in {
						v = l.hu * (1 + l.tex.at(q))
						lab[i] = l.label
						owner[i] = int8(li + 1)
						break
					}
					if edema && class != tCSF {
						v -= 9
					}
				}
			}
			hu[i] = float32(v)
		}
	}
}

// contains reports whether head-frame q (direction u from the head's
// centre, depth brain below the inner skull) lies in the lesion, or in
// the oedema around an ICH.
func (l *lesion) contains(q, u [3]float64, brain float64) (in, edema bool) {
	if l.kind == KindSDH {
		if brain < 0 || q[0]*l.side < 0 {
			return false, false
		}
		c := u[0]*l.dir[0] + u[1]*l.dir[1] + u[2]*l.dir[2]
		if c < l.cosTheta {
			return false, false
		}
		a := math.Acos(min(c, 1)) / l.theta
		return brain < l.thick*(1-a*a), false
	}
	if brain < 0.5 {
		return false, false
	}
	d := [3]float64{q[0] - l.centre[0], q[1] - l.centre[1], q[2] - l.centre[2]}
	if math.Abs(d[0]) > l.reach || math.Abs(d[1]) > l.reach || math.Abs(d[2]) > l.reach {
		return false, false
	}
	e := l.rot.mul(d)
	r := norm(e)
	if r > l.reach {
		return false, false
	}
	x, y, z := e[0]/l.semi[0], e[1]/l.semi[1], e[2]/l.semi[2]
	rho := math.Sqrt(x*x + y*y + z*z)
	lim := 1.0
	if r > 1e-9 {
		lim += l.edge.at([3]float64{e[0] / r, e[1] / r, e[2] / r})
	}
	if rho < lim {
		return true, false
	}
	return false, l.edema && rho < lim*1.35
}

// inGrid reports whether the head-frame point q lies inside the grid,
// margin mm from its edges.
func (h *head) inGrid(q [3]float64, margin float64) bool {
	// LPS = R q + centre, R the transpose of toHead.
	var pos [3]float64
	for i := range 3 {
		pos[i] = h.centre[i]
		for j := range 3 {
			pos[i] += h.toHead[j][i] * q[j]
		}
	}
	for a := range 3 {
		lo, hi := h.grid[0][a], h.grid[1][a]
		m := min(margin, (hi-lo)/2)
		if pos[a] < lo+m || pos[a] > hi-m {
			return false
		}
	}
	return true
}

// addLesion places a lesion of spec l.
func (h *head) addLesion(rng *rand.Rand, ls LesionSpec) {
	l := &lesion{kind: ls.Kind, targetML: ls.VolumeML}
	if ls.Kind == KindSDH {
		l.label = LabelSDH
		if l.targetML == 0 {
			l.targetML = uniform(rng, 5, 60)
		}
		l.hu = uniform(rng, 52, 68)
		l.tex = newWave(rng, 3, 0.05, 0.15, 0.03)
		l.theta = uniform(rng, 35, 60) * math.Pi / 180
		l.cosTheta = math.Cos(l.theta)
		l.side = 1
		if rng.IntN(2) == 0 {
			l.side = -1
		}
		rIn := (h.semi[0]+h.semi[1]+h.semi[2])/3 - h.scalpT - h.skullT
		for try := range 200 {
			dir := [3]float64{l.side * uniform(rng, 0.6, 1), uniform(rng, -0.7, 0.7), uniform(rng, -0.2, 0.7)}
			n := norm(dir)
			l.dir = [3]float64{dir[0] / n, dir[1] / n, dir[2] / n}
			p := [3]float64{l.dir[0] * rIn, l.dir[1] * rIn, l.dir[2] * rIn}
			if h.inGrid(p, 10) || try == 199 {
				break
			}
		}
		// Volume of a cap of radius rIn, half-angle θ, thickness
		// T(1-(α/θ)²): about π rIn² T θ²/2.
		l.thick = min(max(2*l.targetML*1000/(math.Pi*rIn*rIn*l.theta*l.theta), 2), 22)
		h.lesions = append(h.lesions, l)
		return
	}
	l.label = LabelICH
	if l.targetML == 0 {
		l.targetML = math.Exp(uniform(rng, math.Log(0.5), math.Log(40)))
	}
	l.hu = uniform(rng, 55, 78)
	l.tex = newWave(rng, 4, 0.1, 0.4, 0.06)
	l.edge = newWave(rng, 6, 2.5, 6, 0.14)
	l.edema = l.targetML > 5 && rng.IntN(3) > 0
	l.rot = rotation(uniform(rng, 0, math.Pi), uniform(rng, 0, math.Pi), uniform(rng, 0, math.Pi))
	el := [3]float64{1, uniform(rng, 0.65, 1), uniform(rng, 0.5, 0.9)}
	// (4/3)π abc = V, and the edge's waves add about 3σ² to it.
	k := math.Cbrt(l.targetML * 1000 * 3 / (4 * math.Pi * el[0] * el[1] * el[2] * (1 + 3*0.14*0.14/2)))
	l.semi = [3]float64{k * el[0], k * el[1], k * el[2]}
	l.reach = k * (1 + 0.14*math.Sqrt(6)) * 1.4
	need := k*1.2 + 3
	for try := range 2000 {
		if try%400 == 399 {
			need /= 2
		}
		q := [3]float64{uniform(rng, -0.6, 0.6) * h.semi[0], uniform(rng, -0.7, 0.7) * h.semi[1], uniform(rng, -0.5, 0.6) * h.semi[2]}
		_, brain, _, _, _ := h.depths(q)
		if brain < need || h.ventricle(q) || !h.inGrid(q, 2) {
			continue
		}
		clash := false
		for _, o := range h.lesions {
			if o.kind == KindICH && norm([3]float64{q[0] - o.centre[0], q[1] - o.centre[1], q[2] - o.centre[2]}) < (o.reach+l.reach)/1.4 {
				clash = true
			}
		}
		if clash {
			continue
		}
		l.centre = q
		break
	}
	h.lesions = append(h.lesions, l)
}

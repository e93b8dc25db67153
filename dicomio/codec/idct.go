package codec

// Inverse DCT for the sequential DCT decoder (jpegdct.go).
//
// dctIDCT computes the 8×8 two-dimensional inverse DCT of T.81 A.3.3 as
// two separable one-dimensional passes (columns, then rows) in integer
// arithmetic, using the Loeffler–Ligtenberg–Moschytz factorisation (12
// multiplications per 1-D transform) with 13-bit fixed-point constants.
// This is the factorisation, scaling and rounding of the IJG library's
// "islow" method, which dcmtk's dcmdjpeg uses, so the output matches it
// sample for sample for streams whose coefficients stay in range (the
// tests measure this). Intermediate results carry dctPass1Bits extra
// fraction bits between the passes: 2 for 8-bit samples, 1 for 12-bit
// samples, where 2 would overflow 32 bits.

const dctConstBits = 13

// Fixed-point constants: round(x × 2^13).
const (
	dctFix0_298631336 = 2446
	dctFix0_390180644 = 3196
	dctFix0_541196100 = 4433
	dctFix0_765366865 = 6270
	dctFix0_899976223 = 7373
	dctFix1_175875602 = 9633
	dctFix1_501321110 = 12299
	dctFix1_847759065 = 15137
	dctFix1_961570560 = 16069
	dctFix2_053119869 = 16819
	dctFix2_562915447 = 20995
	dctFix3_072711026 = 25172
)

// dctDescale divides x by 2^n, rounding half up.
func dctDescale(x int32, n uint) int32 { return (x + 1<<(n-1)) >> n }

// dctIDCT transforms the dequantized coefficients in (natural, row-major
// order) and writes the 8×8 samples, level shifted by center and clamped
// to 0..maxval, to out[y*stride+x]. ws is scratch space. pass1 is the
// number of fraction bits kept between the passes (2 for 8-bit, 1 for
// 12-bit precision). out must hold 7*stride+8 samples.
func dctIDCT(out []uint16, stride int, in, ws *[64]int32, pass1 uint, center, maxval int32) {
	_ = out[7*stride+7]
	// Pass 1: columns, from in to ws.
	for x := 0; x < 8; x++ {
		if in[8+x]|in[16+x]|in[24+x]|in[32+x]|in[40+x]|in[48+x]|in[56+x] == 0 {
			// Only the DC term: the column is constant (the full
			// computation below gives exactly this value).
			dc := in[x] << pass1
			for y := 0; y < 64; y += 8 {
				ws[y+x] = dc
			}
			continue
		}
		// Even part.
		z2, z3 := in[16+x], in[48+x]
		z1 := (z2 + z3) * dctFix0_541196100
		t2 := z1 - z3*dctFix1_847759065
		t3 := z1 + z2*dctFix0_765366865
		z2, z3 = in[x], in[32+x]
		t0 := (z2 + z3) << dctConstBits
		t1 := (z2 - z3) << dctConstBits
		t10, t13 := t0+t3, t0-t3
		t11, t12 := t1+t2, t1-t2
		// Odd part.
		t0, t1, t2, t3 = in[56+x], in[40+x], in[24+x], in[8+x]
		z1, z2, z3 = t0+t3, t1+t2, t0+t2
		z4 := t1 + t3
		z5 := (z3 + z4) * dctFix1_175875602
		t0 *= dctFix0_298631336
		t1 *= dctFix2_053119869
		t2 *= dctFix3_072711026
		t3 *= dctFix1_501321110
		z1 *= -dctFix0_899976223
		z2 *= -dctFix2_562915447
		z3 = z3*-dctFix1_961570560 + z5
		z4 = z4*-dctFix0_390180644 + z5
		t0 += z1 + z3
		t1 += z2 + z4
		t2 += z2 + z3
		t3 += z1 + z4
		n := dctConstBits - pass1
		ws[x] = dctDescale(t10+t3, n)
		ws[56+x] = dctDescale(t10-t3, n)
		ws[8+x] = dctDescale(t11+t2, n)
		ws[48+x] = dctDescale(t11-t2, n)
		ws[16+x] = dctDescale(t12+t1, n)
		ws[40+x] = dctDescale(t12-t1, n)
		ws[24+x] = dctDescale(t13+t0, n)
		ws[32+x] = dctDescale(t13-t0, n)
	}
	// Pass 2: rows, from ws to out, removing the pass-1 fraction bits and
	// the factor 8 of the two passes.
	n := dctConstBits + pass1 + 3
	for y := 0; y < 8; y++ {
		w := ws[y*8 : y*8+8 : y*8+8]
		o := out[y*stride : y*stride+8 : y*stride+8]
		if w[1]|w[2]|w[3]|w[4]|w[5]|w[6]|w[7] == 0 {
			v := dctClamp(dctDescale(w[0], pass1+3)+center, maxval)
			for x := range o {
				o[x] = v
			}
			continue
		}
		z2, z3 := w[2], w[6]
		z1 := (z2 + z3) * dctFix0_541196100
		t2 := z1 - z3*dctFix1_847759065
		t3 := z1 + z2*dctFix0_765366865
		t0 := (w[0] + w[4]) << dctConstBits
		t1 := (w[0] - w[4]) << dctConstBits
		t10, t13 := t0+t3, t0-t3
		t11, t12 := t1+t2, t1-t2
		t0, t1, t2, t3 = w[7], w[5], w[3], w[1]
		z1, z2, z3 = t0+t3, t1+t2, t0+t2
		z4 := t1 + t3
		z5 := (z3 + z4) * dctFix1_175875602
		t0 *= dctFix0_298631336
		t1 *= dctFix2_053119869
		t2 *= dctFix3_072711026
		t3 *= dctFix1_501321110
		z1 *= -dctFix0_899976223
		z2 *= -dctFix2_562915447
		z3 = z3*-dctFix1_961570560 + z5
		z4 = z4*-dctFix0_390180644 + z5
		t0 += z1 + z3
		t1 += z2 + z4
		t2 += z2 + z3
		t3 += z1 + z4
		o[0] = dctClamp(dctDescale(t10+t3, n)+center, maxval)
		o[7] = dctClamp(dctDescale(t10-t3, n)+center, maxval)
		o[1] = dctClamp(dctDescale(t11+t2, n)+center, maxval)
		o[6] = dctClamp(dctDescale(t11-t2, n)+center, maxval)
		o[2] = dctClamp(dctDescale(t12+t1, n)+center, maxval)
		o[5] = dctClamp(dctDescale(t12-t1, n)+center, maxval)
		o[3] = dctClamp(dctDescale(t13+t0, n)+center, maxval)
		o[4] = dctClamp(dctDescale(t13-t0, n)+center, maxval)
	}
}

// dctIDCTDC writes the block whose only nonzero coefficient is the
// dequantized DC term dc: every sample is the same (equal to what
// dctIDCT computes for such a block).
func dctIDCTDC(out []uint16, stride int, dc int32, pass1 uint, center, maxval int32) {
	_ = out[7*stride+7]
	v := dctClamp(dctDescale(dc<<pass1, pass1+3)+center, maxval)
	for y := 0; y < 8; y++ {
		o := out[y*stride : y*stride+8 : y*stride+8]
		for x := range o {
			o[x] = v
		}
	}
}

// dctClamp limits v to 0..maxval.
func dctClamp(v, maxval int32) uint16 { return uint16(min(max(v, 0), maxval)) }

//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// kern4x24 is the AVX2/FMA micro-kernel (kernel_amd64.s), an asmKernel
// of 4×24.
//
//go:noescape
func kern4x24(kc int, a *float32, rows **float32, c *float32)

// kern8x48 is the AVX-512 micro-kernel (kernel512_amd64.s), an asmKernel
// of 8×48.
//
//go:noescape
func kern8x48(kc int, a *float32, rows **float32, c *float32)

func asmTiles() []*tile {
	return []*tile{
		{name: KernelAVX512, mr: 8, nr: 48, asm: kern8x48, ok: cpu.X86.HasAVX512F},
		{name: KernelAVX2, mr: 4, nr: 24, asm: kern4x24, ok: cpu.X86.HasAVX2 && cpu.X86.HasFMA},
	}
}

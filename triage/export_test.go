package triage

// UnknownOpModel is an ONNX model of the ensemble's input shape made of
// one node of an operator the executor does not know (Einsum).
func UnknownOpModel() []byte {
	g := pb(nil).str(2, "g").
		bytes(1, nodePB("Einsum", "einsum_0", []string{"image"}, []string{"logits"})).
		bytes(11, valueInfoPB("image", 1, 1, 32, 128, 128)).
		bytes(12, valueInfoPB("logits", 1, 2))
	return modelPB(g)
}

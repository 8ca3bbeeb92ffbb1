package mathops

import (
	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/tensor"
)

// Local rules (op.Local) of this package's elementwise ops, for incremental
// inference: each output position depends on the same position of every
// input (after broadcasting), so any box of the output is the op applied to
// the same box of the inputs.

var elementwise = op.LocalRule{Elementwise: true}

// Local: elementwise.
func (k *unaryKernel) Local([]*tensor.Tensor) (op.LocalRule, bool) { return elementwise, true }

// Local: elementwise with broadcasting.
func (k binaryKernel) Local([]*tensor.Tensor) (op.LocalRule, bool) { return elementwise, true }

// Local: elementwise with broadcasting (Sum, Mean, Max, Min).
func (k variadicKernel) Local([]*tensor.Tensor) (op.LocalRule, bool) { return elementwise, true }

// Local: elementwise, the bounds being scalars.
func (k clipKernel) Local([]*tensor.Tensor) (op.LocalRule, bool) { return elementwise, true }

// Local: elementwise, the slope broadcast.
func (k preluKernel) Local([]*tensor.Tensor) (op.LocalRule, bool) { return elementwise, true }

// Local: the identity.
func (identityKernel) Local([]*tensor.Tensor) (op.LocalRule, bool) { return elementwise, true }

// Local: the identity at inference, when the node does not ask for the mask.
func (k dropoutKernel) Local([]*tensor.Tensor) (op.LocalRule, bool) { return elementwise, !k.mask }

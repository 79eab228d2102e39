// The models layer: modules with named parameters, the FFN variants and routers, the sparsity
// controller, AdamW and the learning-rate schedule. Include the specific headers you need.
#pragma once

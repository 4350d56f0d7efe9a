"""Built-in architectures: models described by a few hyperparameters."""

from gradient_lab.engine.plugin_api import Architecture, Param


class MLP(Architecture):
    name = "mlp"
    params = (
        Param("depth", "int", 2, "number of hidden layers", low=0, high=64),
        Param("width", "int", 8, "units in each hidden layer", low=1, high=100_000),
        Param("activation", "str", "tanh", "activation of the hidden layers"),
        Param(
            "parameterization",
            "str",
            "standard",
            "standard: dense layers with the experiment's initializer; ntk: ntk_dense layers "
            "(N(0, 1) weights scaled by 1/√fan-in in the forward pass)",
            choices=("standard", "ntk"),
        ),
    )
    formula = r"\hat y = f_{out}(W_L \cdots f(W_2 f(W_1 x + b_1) + b_2) \cdots + b_L)"
    teaching = (
        "A multilayer perceptron: dense layers of the same width, one after another. Depth "
        "composes features; width gives each layer more of them."
    )

    def layers(self, input_shape, n_outputs, output_activation):
        kind = "ntk_dense" if self.hp["parameterization"] == "ntk" else "dense"
        flatten = [{"type": "flatten"}] if len(input_shape) > 1 else []
        hidden = [
            {"type": kind, "units": self.hp["width"], "activation": self.hp["activation"]}
            for _ in range(self.hp["depth"])
        ]
        output = {"type": kind, "units": n_outputs, "activation": output_activation}
        return [*flatten, *hidden, output]


PLUGINS = [MLP]

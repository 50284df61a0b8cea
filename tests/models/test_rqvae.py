"""The RQ-VAE: every level's residual carries gradient to the encoder."""
import torch

from pipeline.models.rqvae import RQVAE, RQVAEConfig


def test_rqvae_deep_level_residual_loss_changes_encoder_weights():
    """MACRec applies a loss on level-3 residuals: it must reach the encoder."""
    torch.manual_seed(0)
    model = RQVAE(RQVAEConfig(in_dim=8, hidden=(16,), latent_dim=4, levels=4, codebook_size=4))
    x = torch.randn(32, 8)
    model.init_codebooks(x, torch.Generator().manual_seed(0))
    out = model(x)
    out.residuals[2].pow(2).sum().backward()
    first_layer = model.encoder[0].weight.grad
    assert first_layer is not None and first_layer.abs().sum() > 0
    assert out.codes.shape == (32, 4) and int(out.codes.max()) < 4

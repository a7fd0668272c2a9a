config = transformers.AutoConfig.from_pretrained("Salesforce/codet5-small")
config.d_model = 128
config.num_layers = 2
config.num_decoder_layers = 2
config.d_ff = 256
config.num_heads = 4
config.d_kv = 32
model = transformers.T5ForConditionalGeneration(config)

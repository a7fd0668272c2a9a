config = transformers.AutoConfig.from_pretrained("Salesforce/codet5-small")
config.num_layers = 2
config.num_decoder_layers = 2
config.d_ff = 1024
config.num_heads = 8
config.d_kv = 64
model = transformers.T5ForConditionalGeneration(config)

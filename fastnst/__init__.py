"""Neural style transfer as a library: VGG-19 encoder, AdaIN decoder, style bank, batched Stylizer."""

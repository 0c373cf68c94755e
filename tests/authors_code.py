"""The authors' code, copied verbatim (github.com/Georgsiedel/model-based-data-augmentation at 07e47c1).

Only whole line ranges, byte for byte, as the headers say; the tests run them with ``exec`` in a namespace
that supplies their imports (``replay.py`` can stand in for their random number sources). Nothing here is
imported by fastnst.
"""

DATA_SOURCE = (
    # experiments/data.py:21-47
    r'''
def normalization_values(batch, dataset, normalized, manifold=False, manifold_factor=1, verbose=False):

    if manifold:
        mean = torch.mean(batch, dim=(0, 2, 3), keepdim=True).to(device)
        std = torch.std(batch, dim=(0, 2, 3), keepdim=True).to(device)
        mean = mean.view(1, batch.size(1), 1, 1)
        std = ((1 / std) / manifold_factor).view(1, batch.size(1), 1, 1)
    elif normalized:
        if dataset == 'CIFAR10':
            mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1).to(device)
            std = torch.tensor([0.247, 0.243, 0.261]).view(1, 3, 1, 1).to(device)
        elif dataset == 'CIFAR100':
            mean = torch.tensor([0.50707516, 0.48654887, 0.44091784]).view(1, 3, 1, 1).to(device)
            std = torch.tensor([0.26733429, 0.25643846, 0.27615047]).view(1, 3, 1, 1).to(device)
        elif (dataset == 'ImageNet' or dataset == 'TinyImageNet'):
            mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).to(device)
            std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1).to(device)
        else:
            mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1).to(device)
            std = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1).to(device)
            if verbose:
                print('no normalization values set for this dataset, scaling to [-1,1]')
    else:
        mean = 0
        std = 1

    return mean, std
'''
)

NOISE_SOURCE = (
    # experiments/noise.py:13-46
    r'''
def random_erasing_style_mask(batch, noise_patch_lower_scale=0.3, noise_patch_upper_scale=1.0, ratio=[0.3, 3.3]):
        """Get image mask for Patched Noise. Rectangle fully inside the image, as in RandomErasing
        (https://github.com/gatheluck/PatchGaussian/blob/master/patch_gaussian.py)
        Args:
            batch (Tensor): batch of images to be masked.
            noise_patch_lower_scale (sequence): Lower bound for range of proportion of masked area against input image. Upper bound is 1.0
            ratio (sequence): range of aspect ratio of masked area.
        """

        if noise_patch_lower_scale == 1.0 and noise_patch_upper_scale == 1.0:
            return torch.ones(batch.size(), dtype=torch.bool, device=device)

        img_c, img_h, img_w = batch.shape[-3], batch.shape[-2], batch.shape[-1]
        area = img_h * img_w

        log_ratio = torch.log(torch.tensor(ratio))

        patched_area = area * torch.empty(1).uniform_(noise_patch_lower_scale, noise_patch_upper_scale).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()

        h = int(round(math.sqrt(patched_area * aspect_ratio)))
        w = int(round(math.sqrt(patched_area / aspect_ratio)))
        if h > img_h:
            h = img_h
            w = int(round(img_w * patched_area / area)) #reset patched area ratio when patch needs to be cropped due to aspect ratio
        if w > img_w:
            w = img_w
            h = int(round(img_h * patched_area / area)) #reset patched area ratio when patch needs to be cropped due to aspect ratio
        i = torch.randint(0, img_h - h + 1, size=(1,)).item()
        j = torch.randint(0, img_w - w + 1, size=(1,)).item()
        mask = torch.zeros(batch.size(), dtype=torch.bool, device=device)
        mask[:,:,i:i + h, j:j + w] = True

        return mask
'''
    # experiments/noise.py:79-110
    r'''
def _noising(x, add_noise_level=0.0, mult_noise_level=0.0, sparse_level=0.0, l0_level = 0.0):
    # based on https://github.com/erichson/NoisyMix
    add_noise = 0.0
    mult_noise = 1.0
    #with torch.cuda.device(0):
    std = torch.var(x).detach() ** 0.5
    if add_noise_level > 0.0:
        add_noise = add_noise_level * np.random.beta(2, 5) * torch.randn(size=x.shape, dtype=torch.float16, device=device)
        #torch.clamp(add_noise, min=-(2*std), max=(2*std), out=add_noise) # clamp
        sparse = torch.rand(x.shape, dtype=torch.float16, device=device)
        add_noise[sparse<sparse_level] = 0

    rand = random.random()
    if rand < 0.5 and l0_level > 0.0:
        x = x + add_noise
        l0_batch = l0(x, np.random.beta(2, 5)*l0_level, std, sparse_level)
        return l0_batch
    elif mult_noise_level > 0.0:
        mult_noise = mult_noise_level * np.random.beta(2, 5) * (2*torch.rand(x.shape, dtype=torch.float16, device=device)-1) + 1
        sparse = torch.rand(x.shape, dtype=torch.float16, device=device)
        mult_noise[sparse<sparse_level] = 1.0

    return mult_noise * x + add_noise

def noise_up(x, robust_samples=0, add_noise_level=0.0, mult_noise_level=0.0, sparse_level=0.0, l0_level=0.0):
    # based on https://github.com/erichson/NoisyMix
    q = int(x.shape[0] / (robust_samples+1))
    sparsity = random.random() * sparse_level
    for i in range(robust_samples+1):
        x[q*i:q*(i+1)] = _noising(x[q*i:q*(i+1)], add_noise_level=add_noise_level * (i+1), mult_noise_level=mult_noise_level,
                              sparse_level=sparsity, l0_level=l0_level)
    return x
'''
    # experiments/noise.py:176-295
    r'''
def apply_noise(batch, minibatchsize, corruptions, concurrent_combinations, normalized, dataset, manifold=False,
                manifold_factor=1, noise_sparsity=0.0, noise_patch_lower_scale=0.3, noise_patch_upper_scale=1.0):

    if corruptions is None:
        return batch
    #Calculate the mean values for each channel across all images
    mean, std = normalization_values(batch, dataset, normalized, manifold, manifold_factor, verbose=False)

    # Throw out noise outside Gaussian, (L0) and Linf for manifold noise (since epsilon is dependent on dimensionality)
    if manifold:
        if not isinstance(corruptions, dict):
            corruptions = [c for c in corruptions if c.get('noise_type') in {'gaussian', 'uniform-linf', 'standard', 'uniform-l0-impulse'}]
            corruptions = np.array(corruptions)
            if corruptions.size == 0:
                print('Warning: noise_type of p-norm outside L0 and Linf may not be applicable for manifold noise')
        else:
            if corruptions.get('noise_type') != ('gaussian' or 'uniform-linf' or 'standard' or 'uniform-l0-impulse'):
                print('Warning: noise_type of p-norm outside L0 and Linf may not be applicable for manifold noise')

    # Split into minibatches, handling residual (if any)
    full_minibatches = batch[:batch.size(0) // minibatchsize * minibatchsize].view(-1, minibatchsize, batch.size(1), batch.size(2), batch.size(3))
    residual_batch = batch[batch.size(0) // minibatchsize * minibatchsize:] if batch.size(0) % minibatchsize > 0 else None
    minibatches = chain(full_minibatches, [residual_batch] if residual_batch is not None else [])

    for id, minibatch in enumerate(minibatches):
        corruptions_list = random.sample(list(corruptions), k=concurrent_combinations)

        #noisy_minibatch = torch.clone(minibatch)
        for _, (corruption) in enumerate(corruptions_list):
            if corruption['distribution'] == 'uniform':
                d = dist.Uniform(0, 1).sample()
            elif corruption['distribution'] == 'beta2-5':
                d = np.random.beta(2, 5)
            elif corruption['distribution'] == 'max':
                d = 1
            else:
                print('Unknown distribution for epsilon value of p-norm corruption. Max value chosen instead.')
                d = 1
            if d == 0: #dist sampling include lower bound but exclude upper, but we do not want eps = 0
                d = 1
            epsilon = float(d) * float(corruption['epsilon'])
            sparsity = random.random() * noise_sparsity
            noisy_minibatch = sample_lp_corr_batch(corruption['noise_type'], epsilon, minibatch, corruption['sphere'], mean, std, manifold, sparsity)

        mask = random_erasing_style_mask(minibatch, noise_patch_lower_scale=noise_patch_lower_scale,
                                         noise_patch_upper_scale=noise_patch_upper_scale, ratio = [0.3, 3.3])
        final_minibatch = torch.where(mask, noisy_minibatch, minibatch)
        batch[id*minibatchsize:min((id+1)*minibatchsize, batch.size(0))] = final_minibatch

    return batch

def sample_lp_corr_batch(noise_type, epsilon, batch, density_distribution_max, mean, std, manifold, sparsity=0.0):
    corruption = torch.zeros(batch.size(), dtype=torch.float16)

    if noise_type == 'uniform-linf':
        if density_distribution_max == True:  # sample on the hull of the norm ball
            rand = np.random.random(batch.shape)
            sign = np.where(rand < 0.5, -1, 1)
            corruption = torch.from_numpy(sign * epsilon)
        else: #sample uniformly inside the norm ball
            corruption = (torch.rand(batch.shape, dtype=torch.float16, device=device) - 0.5) * 2 * epsilon
    elif noise_type == 'gaussian': #note that this has no option for density_distribution=max
        corruption = torch.randn(size=batch.shape, dtype=torch.float16, device=device) * epsilon
    elif noise_type == 'uniform-l0-impulse':
        num_dimensions = torch.numel(batch[0])
        num_pixels = int(num_dimensions * epsilon)
        lower_bounds = torch.arange(0, batch.size(0) * num_dimensions, num_dimensions, device=device)
        upper_bounds = torch.arange(num_dimensions, (batch.size(0) + 1) * num_dimensions, num_dimensions, device=device)
        indices = torch.cat([torch.randint(l, u, (num_pixels,), device=device) for l, u in zip(lower_bounds, upper_bounds)])
        mask = torch.full(batch.size(), False, dtype=torch.bool, device=device)
        mask.view(-1)[indices] = True
        #apply sparsity: a share of the random impulse noise pixels is left out
        sparse_matrix = torch.rand(batch.shape, dtype=torch.float16, device=device)
        mask[sparse_matrix < sparsity] = False

        if density_distribution_max == True:
            random_numbers = torch.randint(2, size=batch.size(), dtype=torch.float16, device=device)
        else:
            random_numbers = torch.rand(batch.shape, dtype=torch.float16, device=device)
        if manifold:
            random_numbers = (random_numbers * 2) - 1

        #normalizing the impulse noise values
        random_numbers = (random_numbers - mean) / std
        batch_corr = torch.where(mask, random_numbers, batch)

        return batch_corr

    elif 'uniform-l' in noise_type:  #Calafiore1998: Uniform Sample Generation in lp Balls for Probabilistic Robustness Analysis
        img_corr = torch.zeros(batch[0].size(), dtype=torch.float16, device=device)
        #number of dimensions
        d = img_corr.numel()
        # extract Lp-number from args.noise variable
        lp = [float(x) for x in re.findall(r'-?\d+\.?\d*', noise_type)][0]
        u = dist.Gamma(1 / lp, 1).sample(img_corr.shape).to(device)
        u = u ** (1 / lp)
        sign = torch.sign(torch.rand(img_corr.shape, device=device) - 0.5)
        norm = torch.sum(abs(u) ** lp) ** (1 / lp)  # scalar, norm samples to lp-norm-sphere
        if density_distribution_max == True:
            r = 1
        else:  # uniform density distribution
            r = dist.Uniform(0, 1).sample() ** (1.0 / d)
        img_corr = epsilon * r * u * sign / norm #image-sized corruption, epsilon * random radius * random array / normed
        corruption = img_corr.expand(batch.size()).to(device)

    elif noise_type == 'standard':
        return batch
    else:
        print('Unknown type of noise')

    corruption = corruption.to(device)#.clone()
    #sparsity is applied
    sparse_matrix = torch.rand(batch.shape, dtype=torch.float16, device=device)
    #corruption[sparse_matrix < sparsity] = 0
    sparse_corruption = torch.where(sparse_matrix < sparsity, 0, corruption)

    corrupted_batch = batch + (sparse_corruption / std)
    if not manifold:
        corrupted_batch = torch.clamp(corrupted_batch, (0-mean)/std, (1-mean)/std)  #clip below lower and above upper bound
    return corrupted_batch
'''
)

MIXUP_SOURCE = (
    # experiments/mixup.py:10-218
    r'''
class RandomMixup(torch.nn.Module):
    """Randomly apply Mixup to the provided batch and targets.
    The class implements the data augmentations as described in the paper
    `"mixup: Beyond Empirical Risk Minimization" <https://arxiv.org/abs/1710.09412>`_.

    Args:
        num_classes (int): number of classes used for one-hot encoding.
        p (float): probability of the batch being transformed. Default value is 0.5.
        alpha (float): hyperparameter of the Beta distribution used for mixup.
            Default value is 1.0.
        inplace (bool): boolean to make this transform inplace. Default set to False.
    """

    def __init__(self, num_classes: int, p: float = 0.5, alpha: float = 1.0, generated_ratio: float = 0.0, inplace: bool = False) -> None:
        super().__init__()

        if num_classes < 1:
            raise ValueError(
                f"Please provide a valid positive value for the num_classes. Got num_classes={num_classes}"
            )

        if alpha <= 0:
            raise ValueError("Alpha param can't be zero.")

        self.num_classes = num_classes
        self.p = p
        self.alpha = alpha
        self.generated_ratio = generated_ratio
        self.inplace = inplace

    def forward(self, batch: Tensor, target: Tensor, robust_samples: int) -> Tuple[Tensor, Tensor]:
        """
        Args:
            batch (Tensor): Float tensor of size (B, C, H, W)
            target (Tensor): Integer tensor of size (B, )
        Returns:
            Tensor: Randomly transformed batch.
        """
        #if batch.ndim != 4:
        #    raise ValueError(f"Batch ndim should be 4. Got {batch.ndim}")
        if target.ndim != 1:
            raise ValueError(f"Target ndim should be 1. Got {target.ndim}")
        if not batch.is_floating_point():
            raise TypeError(f"Batch dtype should be a float tensor. Got {batch.dtype}.")
        if target.dtype != torch.int64:
            raise TypeError(f"Target dtype should be torch.int64. Got {target.dtype}")

        if not self.inplace:
            batch = batch.clone()
            target = target.clone()
        if target.ndim == 1:
            target = torch.nn.functional.one_hot(target, num_classes=self.num_classes).to(dtype=batch.dtype)

        if torch.rand(1).item() >= self.p:
            return batch, target

        lambda_param = np.random.beta(self.alpha, self.alpha) if self.alpha > 0.0 else 1.0

        #Here, we do mixup and cutmix separately for original and for generated images to not mix up different
        #confidence levels for original and generated images respectively
        q = int(batch.shape[0] / (robust_samples+1))
        gen = int(q * self.generated_ratio)
        orig = q - gen
        index_gen = torch.randperm(gen).to(device)
        index_orig = torch.randperm(orig).to(device)
        for i in range(robust_samples+1):
            batch[q*i:q*i+orig] = lambda_param * batch[q*i:q*i+orig] + (1 - lambda_param) * batch[q*i:q*i+orig][index_orig]
            batch[q*i+orig:q*(i+1)] = lambda_param * batch[q*i+orig:q*(i+1)] + (1 - lambda_param) * batch[q*i+orig:q*(i+1)][index_gen]
        target[:orig] = lambda_param * target[:orig] + (1 - lambda_param) * target[:orig][index_orig]
        target[orig:] = lambda_param * target[orig:] + (1 - lambda_param) * target[orig:][index_gen]

        return batch, target

    def __repr__(self) -> str:
        s = (
            f"{self.__class__.__name__}("
            f"num_classes={self.num_classes}"
            f", p={self.p}"
            f", alpha={self.alpha}"
            f", inplace={self.inplace}"
            f")"
        )
        return s

class RandomCutmix(torch.nn.Module):
    """Randomly apply Cutmix to the provided batch and targets.
    The class implements the data augmentations as described in the paper
    `"CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features"
    <https://arxiv.org/abs/1905.04899>`_.

    Args:
        num_classes (int): number of classes used for one-hot encoding.
        p (float): probability of the batch being transformed. Default value is 0.5.
        alpha (float): hyperparameter of the Beta distribution used for cutmix.
            Default value is 1.0.
        inplace (bool): boolean to make this transform inplace. Default set to False.
    """

    def __init__(self, num_classes: int, p: float = 0.5, alpha: float = 1.0, generated_ratio: float = 0.0, inplace: bool = False) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError("Please provide a valid positive value for the num_classes.")
        if alpha <= 0:
            raise ValueError("Alpha param can't be zero.")

        self.num_classes = num_classes
        self.p = p
        self.alpha = alpha
        self.generated_ratio = generated_ratio
        self.inplace = inplace

    def forward(self, batch: Tensor, target: Tensor, robust_samples: int) -> Tuple[Tensor, Tensor]:
        """
        Args:
            batch (Tensor): Float tensor of size (B, C, H, W)
            target (Tensor): Integer tensor of size (B, )
            robust_samples (int): Integer for the number of concatenated similar images in the batch

        Returns:
            Tensor: Randomly transformed batch.
        """
        #if batch.ndim != 4:
        #    raise ValueError(f"Batch ndim should be 4. Got {batch.ndim}")
        if target.ndim != 1:
            raise ValueError(f"Target ndim should be 1. Got {target.ndim}")
        if not batch.is_floating_point():
            raise TypeError(f"Batch dtype should be a float tensor. Got {batch.dtype}.")
        if target.dtype != torch.int64:
            raise TypeError(f"Target dtype should be torch.int64. Got {target.dtype}")

        if not self.inplace:
            batch = batch.clone()
            target = target.clone()

        if target.ndim == 1:
            target = torch.nn.functional.one_hot(target, num_classes=self.num_classes).to(dtype=batch.dtype)

        if torch.rand(1).item() >= self.p:
            return batch, target

        # Implemented as on cutmix paper, page 12 (with minor corrections on typos).
        lambda_param = np.random.beta(self.alpha, self.alpha) if self.alpha > 0.0 else 1.0
        W, H = F.get_image_size(batch)

        r_x = torch.randint(W, (1,))
        r_y = torch.randint(H, (1,))

        r = 0.5 * math.sqrt(1.0 - lambda_param)
        r_w_half = int(r * W)
        r_h_half = int(r * H)

        x1 = int(torch.clamp(r_x - r_w_half, min=0))
        y1 = int(torch.clamp(r_y - r_h_half, min=0))
        x2 = int(torch.clamp(r_x + r_w_half, max=W))
        y2 = int(torch.clamp(r_y + r_h_half, max=H))

        lambda_param = float(1.0 - (x2 - x1) * (y2 - y1) / (W * H))

        #Here, we do mixup and cutmix separately for original and for generated images to not mix up different confidences
        q = int(batch.shape[0] / (robust_samples+1))
        gen = int(q * self.generated_ratio)
        orig = q - gen
        index_gen = torch.randperm(gen).to(device)
        index_orig = torch.randperm(orig).to(device)
        for i in range(robust_samples+1):
            batch[q*i:q*i+orig, :, y1:y2, x1:x2] = batch[q*i:q*i+orig, :, y1:y2, x1:x2][index_orig]
            batch[q*i+orig:q*(i+1), :, y1:y2, x1:x2] = batch[q*i+orig:q*(i+1), :, y1:y2, x1:x2][index_gen]
        target[:orig] = lambda_param * target[:orig] + (1 - lambda_param) * target[:orig][index_orig]
        target[orig:] = lambda_param * target[orig:] + (1 - lambda_param) * target[orig:][index_gen]

        return batch, target

    def __repr__(self) -> str:
        s = (
            f"{self.__class__.__name__}("
            f"num_classes={self.num_classes}"
            f", p={self.p}"
            f", alpha={self.alpha}"
            f", inplace={self.inplace}"
            f")"
        )
        return s

def mixup_process(inputs, targets, robust_samples, num_classes, mixup_alpha, mixup_p, cutmix_alpha, cutmix_p,
                  generated_ratio, manifold, inplace):

    #if manifold==True and (mixup_p > 0.0 or cutmix_p > 0.0):
    #    mixupcutmix = RandomMixup(num_classes, p=mixup_p, alpha=mixup_alpha, inplace=inplace)
    #    inputs, targets = mixupcutmix(inputs, targets, robust_samples)

    total_probability = cutmix_p + mixup_p
    if total_probability > 1:
        cutmix_p /= total_probability
        mixup_p /= total_probability

    random_number = random.uniform(0, 1)

    if random_number < cutmix_p:
        if cutmix_alpha == 0.0:
            return inputs, targets
        mixupcutmix = RandomCutmix(num_classes, p=1.0, alpha=cutmix_alpha, generated_ratio=generated_ratio, inplace=inplace)
        inputs, targets = mixupcutmix(inputs, targets, robust_samples)
    elif random_number < cutmix_p + mixup_p:
        if mixup_alpha == 0.0:
            return inputs, targets
        mixupcutmix = RandomMixup(num_classes, p=1.0, alpha=mixup_alpha, generated_ratio=generated_ratio, inplace=inplace)
        inputs, targets = mixupcutmix(inputs, targets, robust_samples)

    return inputs, targets
'''
)

CT_MODEL_SOURCE = (
    # experiments/models/ct_model.py:11-168
    r'''
class CtModel(nn.Module):
    def __init__(self, dataset, normalized, num_classes):
        super(CtModel, self).__init__()
        self.normalized = normalized
        self.num_classes = num_classes
        self.dataset = dataset
        self.mean, self.std = normalization_values(
            batch=None,
            dataset=dataset,
            normalized=normalized,
            manifold=False,
            manifold_factor=1,
            verbose=True
        )
        if normalized:
            self.register_buffer("mu", self.mean)
            self.register_buffer("sigma", self.std)

        self.deepaugment_instance = None
        
    def forward_handle_greyscale(self, x):
        if x.shape[1] == 1:  # Grayscale → RGB
            return x.repeat(1, 3, 1, 1)
        else:
            return x

    def forward_normalize(self, x):
        if self.normalized:
            x = (x - self.mu) / self.sigma
        return x
    
    def noise_mixup(self, out, targets, robust_samples, corruptions, mixup_alpha, mixup_p, cutmix_alpha, cutmix_p, noise_minibatchsize,
                            concurrent_combinations, noise_sparsity, noise_patch_lower_scale, noise_patch_upper_scale,
                            generated_ratio, n2n_deepaugment):

        #define where mixup is applied. k=0 is in the input space, k>0 is in the embedding space (manifold mixup)
        if self.training == False: k = -1
        else: k = 0

        if k == 0:  # Do input mixup if k is 0
                    
            if n2n_deepaugment: #apply deepaugment if True
                if self.deepaugment_instance is None:
                    self.deepaugment_instance = N2N_DeepAugment(orig_batch_size=out.shape[0], 
                                                                image_size=out.shape[2], 
                                                                channels=out.shape[1],
                                                                noisenet_max_eps=0.75, 
                                                                ratio=0.5)
                out = self.deepaugment_instance(out)
            mixed_out, targets = mixup_process(out, targets, robust_samples, self.num_classes, mixup_alpha, mixup_p,
                                         cutmix_alpha, cutmix_p, generated_ratio, manifold=False, inplace=True)
            noisy_out = apply_noise(mixed_out, noise_minibatchsize, corruptions, concurrent_combinations,
                                                            self.normalized, self.dataset,
                                                            manifold=False, manifold_factor=1, noise_sparsity=noise_sparsity,
                                                            noise_patch_lower_scale=noise_patch_lower_scale,
                                                            noise_patch_upper_scale=noise_patch_upper_scale)
            out = noisy_out
            # plot_images(4, self.mean, self.std, noisy_out, noisy_out)

        return out, targets

    def forward_noise_mixup(
        self,
        out,
        targets,
        robust_samples,
        corruptions,
        mixup_alpha,
        mixup_p,
        manifold,
        manifold_noise_factor,
        cutmix_alpha,
        cutmix_p,
        noise_minibatchsize,
        concurrent_combinations,
        noise_sparsity,
        noise_patch_lower_scale,
        noise_patch_upper_scale,
        generated_ratio,
        n2n_deepaugment,
        style_feats,
        **kwargs,
    ):
        if style_norm_type := kwargs.get("norm_type", None):
            int_adain_probability = kwargs.get("style_probability", 0.0)

        # define where mixup is applied. k=0 is in the input space, k>0 is in the embedding space (manifold mixup)
        if self.training == False:
            k = -1
        elif manifold == True:
            k = np.random.choice(range(3), 1)[0]
        else:
            k = 0

        if k == 0:  # Do deepaugemtn, input mixup and noise injection if k is 0
                    
            if n2n_deepaugment: #apply deepaugment if True
                if self.deepaugment_instance is None:
                    self.deepaugment_instance = N2N_DeepAugment(orig_batch_size=out.shape[0], 
                                                                image_size=out.shape[2], 
                                                                channels=out.shape[1],
                                                                noisenet_max_eps=0.75, 
                                                                ratio=0.5)
                out = self.deepaugment_instance(out)
            mixed_out, targets = mixup_process(out, targets, robust_samples, self.num_classes, mixup_alpha, mixup_p,
                                         cutmix_alpha, cutmix_p, generated_ratio, manifold=False, inplace=False)
            noisy_out = apply_noise(mixed_out, noise_minibatchsize, corruptions, concurrent_combinations,
                                                            self.normalized, self.dataset,
                                                            manifold=False, manifold_factor=1, noise_sparsity=noise_sparsity,
                                                            noise_patch_lower_scale=noise_patch_lower_scale,
                                                            noise_patch_upper_scale=noise_patch_upper_scale)
            out = noisy_out
            #plot_images(2, self.mean, self.std, noisy_out, noisy_out)

        out = self.blocks[0](out)

        if style_feats is not None:
            style_feats = self.blocks[0](style_feats)

        prob = torch.rand(1).item()

        for i, ResidualBlock in enumerate(self.blocks[1:]):
            if style_norm_type == "pono":
                if prob < int_adain_probability and i == 0:
                    out = self.pono(out, style_feats)

            out = ResidualBlock(out)

            if style_norm_type == "int_adain":
                if prob < int_adain_probability and i == 0:
                    # style_feats = self.blocks[0](style_feats)
                    style_feats = ResidualBlock(style_feats)
                    out = self.internal_adain(out, style_feats)
                    
            if k == (i + 1):  # Do manifold mixup if k is greater 0
                out, targets = mixup_process(
                    out,
                    targets,
                    robust_samples,
                    self.num_classes,
                    mixup_alpha,
                    mixup_p,
                    cutmix_alpha,
                    cutmix_p,
                    generated_ratio,
                    manifold=True,
                    inplace=False,
                )
                out = noise_up(
                    out,
                    robust_samples=robust_samples,
                    add_noise_level=0.5,
                    mult_noise_level=0.5,
                    sparse_level=0.65,
                    l0_level=0.0,
                )

        return out, targets
'''
)

WRN_SOURCE = (
    # experiments/models/wideresnet.py:11-12
    r'''
def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=True)
'''
    # experiments/models/wideresnet.py:23-44
    r'''
class WideBasic(nn.Module):
    def __init__(self, in_planes, planes, dropout_rate, stride=1, activation_function=F.relu):
        super(WideBasic, self).__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, bias=True)
        self.dropout = nn.Dropout(p=dropout_rate)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=True)
        self.activation_function = activation_function

        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=True),
            )

    def forward(self, x):
        out = self.dropout(self.conv1(self.activation_function(self.bn1(x))))
        out = self.conv2(self.activation_function(self.bn2(out)))
        out += self.shortcut(x)

        return out
'''
    # experiments/models/wideresnet.py:77-128
    r'''
class WideResNet(ct_model.CtModel):
    activation_function: object

    def __init__(self, depth, widen_factor, dataset, normalized, dropout_rate=0.0, num_classes=10,
                 factor=1, block=WideBasic, activation_function='relu', **kwargs):
        super(WideResNet, self).__init__(dataset=dataset, normalized=normalized, num_classes=num_classes)
        self.in_planes = 16
        self.activation_function = getattr(F, activation_function)

        assert ((depth-4)%6 ==0), 'Wide-resnet depth should be 6n+4'
        n = (int)((depth-4)/6)
        k = widen_factor

        nStages = [16, 16*k, 32*k, 64*k]

        self.conv1 = conv3x3(3,nStages[0], stride=1)
        self.layer1 = self._wide_layer(block, nStages[1], n, dropout_rate, stride=factor, activation_function=self.activation_function)
        self.layer2 = self._wide_layer(block, nStages[2], n, dropout_rate, stride=2, activation_function=self.activation_function)
        self.layer3 = self._wide_layer(block, nStages[3], n, dropout_rate, stride=2, activation_function=self.activation_function)
        self.bn1 = nn.BatchNorm2d(nStages[3], momentum=0.9)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = nn.Linear(nStages[3], num_classes)
        self.blocks = [self.conv1, self.layer1, self.layer2, self.layer3]

    def _wide_layer(self, block, planes, num_blocks, dropout_rate, stride, activation_function):
        strides = [stride] + [1]*(num_blocks-1)
        layers = []

        for stride in strides:
            layers.append(block(self.in_planes, planes, dropout_rate, stride, activation_function))
            self.in_planes = planes

        return nn.Sequential(*layers)

    def forward(self, x, targets=None, robust_samples=0, corruptions=None, mixup_alpha=0.0, mixup_p=0.0, manifold=False,
                manifold_noise_factor=1, cutmix_alpha=0.0, cutmix_p=0.0, noise_minibatchsize=1,
                concurrent_combinations=1, noise_sparsity=0.0, noise_patch_lower_scale = 1.0,
                noise_patch_upper_scale=1.0, generated_ratio=0.0, n2n_deepaugment=False, style_feats=None, **kwargs):
        x = super(WideResNet, self).forward_handle_greyscale(x)
        out = super(WideResNet, self).forward_normalize(x)
        out, mixed_targets = super(WideResNet, self).forward_noise_mixup(out, targets, robust_samples, corruptions,
                                        mixup_alpha, mixup_p, manifold, manifold_noise_factor, cutmix_alpha, cutmix_p,
                                        noise_minibatchsize, concurrent_combinations, noise_sparsity, noise_patch_lower_scale, 
                                        noise_patch_upper_scale, generated_ratio, n2n_deepaugment, style_feats, **kwargs)
        out = self.activation_function(self.bn1(out))
        out = self.avgpool(out)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        if self.training == True:
            return out, mixed_targets
        else:
            return out
'''
    # experiments/models/wideresnet.py:134-136
    r'''
def WideResNet_28_4(num_classes, factor, dataset, normalized, block=WideBasic, dropout_rate=0.0, activation_function='relu', **kwargs):
    return WideResNet(depth=28, widen_factor=4, dataset=dataset, normalized=normalized, dropout_rate=dropout_rate,
                      num_classes=num_classes, factor=factor, block=block, activation_function=activation_function, **kwargs)
'''
)

EVAL_SOURCE = (
    # experiments/eval.py:69-110
    r'''
def compute_clean(testloader, model, num_classes, dataset):
    with torch.no_grad():
        correct = 0
        total = 0
        if dataset in ['WaferMap']:
            calibration_metric = BinaryCalibrationError(n_bins=15, norm='l1')
        else:
            calibration_metric = MulticlassCalibrationError(num_classes=num_classes, n_bins=15, norm='l1')
        all_targets = torch.empty(0)
        all_targets_pred = torch.empty((0, num_classes))
        all_targets, all_targets_pred = all_targets.to(device), all_targets_pred.to(device)

        for batch_idx, (inputs, targets) in enumerate(testloader):

            inputs, targets = inputs.to(device, dtype=torch.float), targets.to(device)
            with torch.amp.autocast('cuda'):
                targets_pred = model(inputs)
            
            if dataset in ['WaferMap']:
                predicted = (targets_pred > 0.5).float()    
            else:
                _, predicted = targets_pred.max(1)

            total += targets.size(0)

            if dataset in ['WaferMap']:
                matches = predicted.eq(targets)  # shape: [batch_size, num_labels]
                exact_match = matches.all(dim=1)  # shape: [batch_size], bool tensor
                correct += exact_match.sum().item()
            else:
                correct += predicted.eq(targets).sum().item()
            all_targets = torch.cat((all_targets, targets), 0)
            all_targets_pred = torch.cat((all_targets_pred, targets_pred), 0)

        acc = 100.*correct/total
        if dataset in ['WaferMap']:
            rmsce_clean = float(calibration_metric(all_targets_pred.view(-1), all_targets.view(-1)).cpu())
        else:
            rmsce_clean = float(calibration_metric(all_targets_pred, all_targets).cpu())
        print("Clean Accuracy ", acc, "%, RMSCE Calibration Error: ", rmsce_clean)

        return acc, rmsce_clean
'''
    # experiments/eval_corruptions.py:23-50
    r'''
def compute_p_corruptions(testloader, model, test_corruptions, dataset):
    with torch.no_grad():
        model.eval()
        correct, total = 0, 0
        for batch_idx, (inputs, targets) in enumerate(testloader):
            inputs, targets = inputs.to(device, dtype=torch.float), targets.to(device)
            inputs_pert = apply_noise(inputs, 8, test_corruptions, 1, False, dataset)
            #plot_images(inputs_pert, inputs_pert, 3)

            with torch.amp.autocast('cuda'):
                targets_pred = model(inputs_pert)

            if dataset in ['WaferMap']:
                predicted = (targets_pred > 0.5).float() 
            else:  
                _, predicted = targets_pred.max(1)

            total += targets.size(0)
            
            if dataset in ['WaferMap']:
                matches = predicted.eq(targets)  # shape: [batch_size, num_labels]
                exact_match = matches.all(dim=1)  # shape: [batch_size], bool tensor
                correct += exact_match.sum().item()
            else:
                correct += predicted.eq(targets).sum().item()

        acc = 100.*correct/total
        return acc
'''
    # experiments/eval_corruptions.py:93-137
    r'''
def compute_c(loader_c, model, num_classes, dataset, criterion = None):
    with torch.no_grad():
        model.eval()
        correct, total, loss_c = 0, 0, 0
        if dataset in ['WaferMap']:
            calibration_metric = BinaryCalibrationError(n_bins=15, norm='l1')
        else:
            calibration_metric = MulticlassCalibrationError(num_classes=num_classes, n_bins=15, norm='l1')
        all_targets = torch.empty(0)
        all_targets_pred = torch.empty((0, num_classes))
        all_targets, all_targets_pred = all_targets.to(device), all_targets_pred.to(device)

        for batch_idx, (inputs, targets) in enumerate(loader_c):
            inputs, targets = inputs.to(device, dtype=torch.float), targets.to(device)
            with torch.amp.autocast('cuda'):
                
                targets_pred = model(inputs)
                if criterion is not None:
                    loss = criterion.test(targets_pred, targets)
                    loss_c += loss.item()
            
            avg_test_loss_c = loss_c / (batch_idx + 1)
            
            if dataset in ['WaferMap']:
                predicted = (targets_pred > 0.5).float() 
            else:  
                _, predicted = targets_pred.max(1)

            total += targets.size(0)
            if dataset in ['WaferMap']:
                matches = predicted.eq(targets)  # shape: [batch_size, num_labels]
                exact_match = matches.all(dim=1)  # shape: [batch_size], bool tensor
                correct += exact_match.sum().item()
            else:
                correct += predicted.eq(targets).sum().item()
            all_targets = torch.cat((all_targets, targets), 0)
            all_targets_pred = torch.cat((all_targets_pred, targets_pred), 0)

        if dataset in ['WaferMap']:
            rmsce_c = float(calibration_metric(all_targets_pred.view(-1), all_targets.view(-1)).cpu())
        else:
            rmsce_c = float(calibration_metric(all_targets_pred, all_targets).cpu())
        acc = 100. * correct / total

        return acc, rmsce_c, avg_test_loss_c
'''
)

TEST_CORRUPTIONS_SOURCE = (
    # experiments/configs/config549.py:56-107 (config550.py:57-108 and config551.py:56-107 are the same lines)
    r'''
test_corruptions = np.array([
{'noise_type': 'uniform-l0-impulse', 'epsilon': 0.01, 'sphere': True, 'distribution': 'max'},
{'noise_type': 'uniform-l0-impulse', 'epsilon': 0.02, 'sphere': True, 'distribution': 'max'},
{'noise_type': 'uniform-l0-impulse', 'epsilon': 0.05, 'sphere': True, 'distribution': 'max'},
{'noise_type': 'uniform-l0-impulse', 'epsilon': 0.1, 'sphere': True, 'distribution': 'max'},
{'noise_type': 'uniform-l0-impulse', 'epsilon': 0.2, 'sphere': True, 'distribution': 'max'},
{'noise_type': 'uniform-l0.5', 'epsilon': 50000.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l0.5', 'epsilon': 100000.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l0.5', 'epsilon': 200000.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l0.5', 'epsilon': 300000.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l0.5', 'epsilon': 500000.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l1', 'epsilon': 25.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l1', 'epsilon': 50.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l1', 'epsilon': 100.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l1', 'epsilon': 200.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l1', 'epsilon': 300.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l2', 'epsilon': 0.5, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l2', 'epsilon': 1.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l2', 'epsilon': 2.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l2', 'epsilon': 3.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l2', 'epsilon': 5.0, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l5', 'epsilon': 0.05, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l5', 'epsilon': 0.1, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l5', 'epsilon': 0.2, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l5', 'epsilon': 0.4, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l5', 'epsilon': 0.8, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l10', 'epsilon': 0.02, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l10', 'epsilon': 0.05, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l10', 'epsilon': 0.1, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l10', 'epsilon': 0.2, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l10', 'epsilon': 0.4, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l50', 'epsilon': 0.02, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l50', 'epsilon': 0.05, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l50', 'epsilon': 0.1, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l50', 'epsilon': 0.15, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l50', 'epsilon': 0.2, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l200', 'epsilon': 0.02, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l200', 'epsilon': 0.04, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l200', 'epsilon': 0.08, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l200', 'epsilon': 0.12, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-l200', 'epsilon': 0.2, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-linf', 'epsilon': 0.01, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-linf', 'epsilon': 0.02, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-linf', 'epsilon': 0.05, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-linf', 'epsilon': 0.1, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'uniform-linf', 'epsilon': 0.2, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'gaussian', 'epsilon': 0.01, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'gaussian', 'epsilon': 0.02, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'gaussian', 'epsilon': 0.05, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'gaussian', 'epsilon': 0.1, 'sphere': False, 'distribution': 'max'},
{'noise_type': 'gaussian', 'epsilon': 0.2, 'sphere': False, 'distribution': 'max'}
])
'''
)

"""The neural-network operations: each forward next to its local derivative, on raw ndarrays.

These are single graph nodes whose backward is written out by hand (fused), where composing
elementwise operations would be slower or less stable. :mod:`signdigits.functional` holds
the functions that users call; the classes here are the nodes those functions record. They
are named with ``Op`` so that the layer names (``Linear``, ``Conv2d``, …) belong to
:mod:`signdigits.nn` alone.

Images are NCHW: ``(batch, channels, height, width)``. Notation as in
:mod:`signdigits.autograd.ops`: ``g = ∂L/∂y`` arrives at the output, ``backward`` returns
``∂L/∂x`` for each input (``None`` where ``needs_input_grad`` says nobody wants it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from signdigits.autograd import threads
from signdigits.autograd.ops import matrix_product, stable_sigmoid
from signdigits.autograd.tensor import Function, sum_to_shape
from signdigits.errors import ShapeError


def _check_nchw(x: np.ndarray, op: str) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """im2col as a view: every (kh, kw) window of an NCHW array, shape (N, C, H', W', kh, kw)."""
    view = sliding_window_view(x, kernel, axis=(2, 3))
    return view[:, :, :: stride[0], :: stride[1]]


def _col2im(cols: np.ndarray, shape: tuple[int, ...], stride: tuple[int, int]) -> np.ndarray:
    """The adjoint of :func:`_windows`: add each window value (cols shaped
    (N, C, kh, kw, H', W')) back onto the image position it was read from."""
    n, c, kh, kw, ho, wo = cols.shape
    sh, sw = stride
    image = np.zeros(shape, dtype=cols.dtype)
    if (sh, sw) == (kh, kw):  # windows tile the image: one reshaped copy, no overlap
        tiles = cols.transpose(0, 1, 4, 2, 5, 3).reshape(n, c, ho * kh, wo * kw)
        image[:, :, : ho * kh, : wo * kw] = tiles
        return image
    for i in range(kh):  # one vectorised add per kernel offset
        for j in range(kw):
            image[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw] += cols[:, :, i, j]
    return image


def _pad_into(image: np.ndarray, x: np.ndarray, padding: tuple[int, int]) -> None:
    """Write the NHWC array x into the middle of ``image`` and zeros around it (padding
    (ph, pw) on each side of H and W)."""
    (ph, pw), (h, w) = padding, x.shape[1:3]
    if ph:
        image[:, :ph] = 0
        image[:, ph + h :] = 0
    if pw:
        image[:, ph : ph + h, :pw] = 0
        image[:, ph : ph + h, pw + w :] = 0
    image[:, ph : ph + h, pw : pw + w] = x


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _add_bias(y: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """y + b for a fresh product y: in place (one allocation saved) unless NumPy's promotion
    makes the sum wider than y (a float64 bias on float32 products gives float64)."""
    if b is None:
        return y
    if np.result_type(y, b) == y.dtype:
        y += b
        return y
    return y + b


# -- layers -----------------------------------------------------------------------------------
class LinearOp(Function):
    """y = x Wᵀ + b, with W of shape (out, in), x of shape (*, in) and b broadcasting to y
    (usually (out,)).

    ∂L/∂x = g W,  ∂L/∂W = gᵀ x (summed over the leading axes),  ∂L/∂b = Σ g over the axes
    that b was broadcast along.

    The forward product is computed as (W xᵀ)ᵀ: the same numbers, in the memory layout
    where OpenBLAS is fastest for a small batch (up to 1.5 × faster than x Wᵀ). ∂L/∂W is
    computed as gᵀ x, C-contiguous like W itself: (xᵀ g)ᵀ was a little faster to multiply
    but came out transposed, and the optimizer's elementwise update of W then cost a
    transposed copy (17 ms a step for a 4096 × 512 layer) or strided passes.
    """

    __slots__ = ()
    name = "linear"
    fresh_grads = True

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if w.ndim != 2:
            raise ShapeError(f"linear: weight must be 2-D (out, in), got shape {w.shape}")
        if x.ndim == 0 or x.shape[-1] != w.shape[1]:
            raise ShapeError(
                f"linear: input of shape {x.shape} must end in in_features = {w.shape[1]} "
                f"for a weight of shape {w.shape}"
            )
        out_shape = (*x.shape[:-1], w.shape[0])
        if b is not None and not _broadcasts_to(b.shape, out_shape):
            raise ShapeError(
                f"linear: bias of shape {b.shape} does not broadcast to the output's shape "
                f"{out_shape}; a bias for {w.shape[0]} outputs has shape ({w.shape[0]},)"
            )
        needs_x, needs_w = self.needs_input_grad[:2]
        bias_shape = None if b is None else b.shape
        self.saved = (x if needs_w else None, w if needs_x else None, bias_shape)
        rows = math.prod(x.shape[:-1])  # not -1: a size-0 axis would make it ambiguous
        y = matrix_product(w, x.reshape(rows, w.shape[1]).T).T.reshape(out_shape)
        return _add_bias(y, b)

    def backward(self, g: np.ndarray) -> list[np.ndarray | None]:
        x, w, bias_shape = self.saved
        needs_x, needs_w = self.needs_input_grad[:2]
        rows = math.prod(g.shape[:-1])
        g_rows = g.reshape(rows, g.shape[-1])
        grads = [
            matrix_product(g_rows, w).reshape(*g.shape[:-1], w.shape[1]) if needs_x else None,
            matrix_product(g_rows.T, x.reshape(rows, x.shape[-1])) if needs_w else None,
        ]
        if bias_shape is not None:
            gb = sum_to_shape(g, bias_shape, self.name) if self.needs_input_grad[2] else None
            grads.append(gb.copy() if gb is g else gb)
        return grads


_CHUNK_VALUES = 1 << 18  # column values per chunk of conv2d's im2col and col2im
_KEEP_WIDTH = 64  # conv2d keeps its whole column matrix when kh·kw·C is below this


def _summed_over_images(
    partial_sum: Callable[[slice], np.ndarray], n: int, values_per_image: int = 1
) -> np.ndarray:
    """Σ over the batch of ``partial_sum(images)``, each thread summing its share of the
    images and the shares added in their order (the same total on every run)."""
    partial = threads.for_slices(partial_sum, n, values_per_image)
    total = partial[0]
    for more in partial[1:]:
        total = total + more
    return total


class Conv2dOp(Function):
    """Cross-correlation of an NCHW image x with kernels w (O, C, kh, kw), plus bias b (O,):

    y[n, o, i, j] = b[o] + Σ_{c,p,q} w[o, c, p, q] · x_pad[n, c, s·i + p, s·j + q].

    Backward: ∂L/∂w[o,c,p,q] = Σ_{n,i,j} g[n,o,i,j] · x_pad[n,c,s·i+p,s·j+q],
    ∂L/∂b[o] = Σ_{n,i,j} g[n,o,i,j], and ∂L/∂x = col2im(Σ_o g[n,o,i,j] · w[o,c,p,q]) with the
    padding cut away.

    The kernel works in one layout, NHWC, where a window's kh·kw·C values are kw·C-long
    contiguous runs. Forward transposes (and pads) x once, copies the windows of a few
    images at a time into the rows of a column matrix Xₙ (H'·W', kh·kw·C) (im2col, one
    strided copy per chunk, into one reused buffer that stays in cache), and multiplies the
    columns with the (kh·kw·C, O) weight matrix Wm as Xₙ Wm, the layout in which OpenBLAS
    is fastest here (10–25 % faster than Wmᵀ Xₙᵀ), then turns the (H'·W', O) product into
    NCHW while it is still in cache, adding the bias in the same pass. Narrow columns (a
    first layer on one channel) are multiplied as Wmᵀ Xₙᵀ, already NCHW: X Wm is slow with
    so few columns. A layer's output does not depend on whether its weight needs a
    gradient (the same products either way). Building the whole N·H'·W' × kh·kw·C matrix
    instead costs more in fresh memory than the product: chunks halve the forward of a 32→64
    layer on 32×32 images. ∂L/∂w = Σₙ gₙ Xₙ rebuilds the columns the same way from the
    saved padded image (keeping them all measured 10 % slower for the whole training step);
    only narrow columns (kh·kw·C < ``_KEEP_WIDTH``, e.g. a first layer on one channel) are
    kept whole in forward, where a chunked product that narrow would be slower than
    ∂L/∂w = gᵀ X, one product with g as (O, N·H'·W'). The bias gradient is gᵀ·1, a
    matrix-vector product (several times faster than a sum over an axis). ∂L/∂x: the column
    gradients g W_pqᵀ are added back onto the padded NHWC image offset by offset (col2im,
    see :meth:`_input_grad`), then transposed to NCHW. The image (or X) is kept only when w
    needs a gradient, Wm only when x needs one.
    """

    __slots__ = ("padding", "stride")
    name = "conv2d"
    fresh_grads = True

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride, self.padding = stride, padding

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        _check_nchw(x, self.name)
        if w.ndim != 4 or w.shape[1] != x.shape[1]:
            raise ShapeError(
                f"conv2d: weight must be (out, {x.shape[1]}, kh, kw) for input of shape "
                f"{x.shape}, got {w.shape}"
            )
        if b is not None and b.shape != (w.shape[0],):
            raise ShapeError(
                f"conv2d: bias must have shape ({w.shape[0]},), one value per output channel, "
                f"got {b.shape}"
            )
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        (ph, pw), (sh, sw) = self.padding, self.stride
        hp, wp = h + 2 * ph, wd + 2 * pw
        if hp < kh or wp < kw:
            raise ShapeError(
                f"conv2d: kernel {(kh, kw)} is larger than the padded input {(hp, wp)} "
                f"(input of shape {x.shape}, padding {self.padding})"
            )
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        image = np.empty((n, hp, wp, c), dtype=x.dtype)  # x padded, NHWC: filled by part
        needs_x, needs_w = self.needs_input_grad[:2]
        wm = w.transpose(2, 3, 1, 0).reshape(kh * kw * c, o)
        y = np.empty((n, o, ho * wo), dtype=np.result_type(x, w))
        # Narrow columns (kh·kw·C below _KEEP_WIDTH) are cheap to keep and slow to rebuild in
        # chunks for the weight gradient: those are written into one kept matrix instead.
        kept = None
        if needs_w and kh * kw * c < _KEEP_WIDTH:
            kept = np.empty((n * ho * wo, kh * kw * c), dtype=x.dtype)

        bias_in_place = b is not None and np.result_type(y, b) == y.dtype

        hw = ho * wo
        narrow = kh * kw * c < _KEEP_WIDTH
        per_product = max(1, min(n, _CHUNK_VALUES // max(1, hw * o)))  # images per product

        def forward_images(part: slice) -> None:  # one thread's share of the batch
            _pad_into(image[part], x[part].transpose(0, 2, 3, 1), self.padding)
            part_kept = None if kept is None else kept[part.start * hw : part.stop * hw]
            part_y = y[part]
            rows = None if narrow else np.empty((per_product * hw, o), dtype=y.dtype)
            for start, stop, cols in self._column_chunks(
                image[part], (ho, wo), (kh, kw), part_kept
            ):
                if narrow:  # Wmᵀ Xₙᵀ: already NCHW; X Wm is slow for so few columns
                    np.matmul(
                        wm.T,
                        cols.reshape(stop - start, hw, kh * kw * c).transpose(0, 2, 1),
                        out=part_y[start:stop],
                    )
                    continue
                for first in range(start, stop, per_product):  # Xₙ Wm, then NCHW in cache
                    last = min(stop, first + per_product)
                    product = np.matmul(
                        cols[(first - start) * hw : (last - start) * hw],
                        wm,
                        out=rows[: (last - first) * hw],
                    )
                    as_nchw = product.reshape(last - first, hw, o).transpose(0, 2, 1)
                    if bias_in_place:  # the transposing copy and the bias in one pass
                        np.add(as_nchw, b[:, None], out=part_y[first:last])
                    else:
                        part_y[first:last] = as_nchw
            if bias_in_place and narrow:
                part_y += b[:, None]

        threads.for_slices(forward_images, n, ho * wo * kh * kw * c)
        if b is not None and not bias_in_place:  # a wider bias: the sum takes its dtype
            y = y + b[:, None]
        columns = (image if kept is None else kept) if needs_w else None
        self.saved = (columns, wm if needs_x else None, x.shape, (kh, kw))
        return y.reshape(n, o, ho, wo)

    def _column_chunks(
        self,
        image: np.ndarray,
        out_hw: tuple[int, int],
        kernel: tuple[int, int],
        kept: np.ndarray | None = None,
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """im2col a few images at a time: (start, stop, columns of images start:stop, shape
        ((stop - start)·H'·W', kh·kw·C)), every chunk written into the same reused buffer,
        so that it is still in cache when it is multiplied; or, given ``kept`` (the whole
        column matrix), into it in one chunk (as fast as chunks here, and one product)."""
        n, _, _, c = image.shape
        (ho, wo), (kh, kw), (sh, sw) = out_hw, kernel, self.stride
        sn, sy, sx, sc = image.strides
        windows = np.lib.stride_tricks.as_strided(
            image, (n, ho, wo, kh, kw, c), (sn, sh * sy, sw * sx, sy, sx, sc), writeable=False
        )
        if kept is None:
            chunk = max(1, _CHUNK_VALUES // max(1, ho * wo * kh * kw * c))
            buffer = np.empty((min(chunk, n) * ho * wo, kh * kw * c), dtype=image.dtype)
        else:
            chunk, buffer = max(1, n), kept
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            cols = buffer[: (stop - start) * ho * wo]
            cols.reshape(stop - start, ho, wo, kh, kw, c)[...] = windows[start:stop]
            yield start, stop, cols

    def backward(self, g: np.ndarray) -> list[np.ndarray | None]:
        columns, wm, x_shape, (kh, kw) = self.saved
        needs_x, needs_w = self.needs_input_grad[:2]
        needs_b = len(self.needs_input_grad) == 3 and self.needs_input_grad[2]
        n, o, ho, wo = g.shape
        g3 = g.reshape(n, o, ho * wo)
        gx = gw = gb = None
        if needs_x:
            gx = self._input_grad(g3, wm, x_shape, (kh, kw))
        if needs_w:
            if columns.ndim == 2:  # the kept column matrix X: ∂L/∂w = Σₙ gₙ Xₙ, batched
                kept = columns.reshape(n, ho * wo, columns.shape[1])
                gw = _summed_over_images(
                    lambda part: np.matmul(g3[part], kept[part]).sum(0), n, o * ho * wo
                )
                gw = np.ascontiguousarray(gw.reshape(o, kh, kw, x_shape[1]).transpose(0, 3, 1, 2))
            else:  # the padded NHWC image: rebuild the columns in chunks
                gw = self._weight_grad(g, columns, (kh, kw))
        if needs_b:
            if g.dtype in (np.float32, np.float64):  # gₙ·1, a matrix-vector product per image
                ones = np.ones(ho * wo, dtype=g.dtype)
                gb = _summed_over_images(lambda part: (g3[part] @ ones).sum(0), n, o * ho * wo)
            else:
                gb = g3.sum(axis=(0, 2))
        grads = [gx, gw]
        if len(self.needs_input_grad) == 3:
            grads.append(gb)
        return grads

    def _weight_grad(self, g: np.ndarray, image: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
        """∂L/∂w = Σₙ gₙ Xₙ, with gₙ = g[n] as (O, H'·W') and Xₙ image n's columns, rebuilt
        from the saved padded image a few at a time in cache: cheaper than writing (and
        faulting in) the whole column matrix in forward and reading it back here."""
        n, o, ho, wo = g.shape
        (kh, kw), c = kernel, image.shape[3]
        g = g.reshape(n, o, ho * wo)
        dtype = np.result_type(g, image)

        def weight_grad_of(part: slice) -> np.ndarray:  # one thread's share: Σ over its images
            gw = np.zeros((o, kh * kw * c), dtype=dtype)
            product = np.empty_like(gw)
            part_g = g[part]
            for start, stop, cols in self._column_chunks(image[part], (ho, wo), kernel):
                for i in range(start, stop):
                    rows = slice((i - start) * ho * wo, (i - start + 1) * ho * wo)
                    gw += np.matmul(part_g[i], cols[rows], out=product)
            return gw

        gw = _summed_over_images(weight_grad_of, n, ho * wo * kh * kw * c)
        return np.ascontiguousarray(gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))

    def _input_grad(
        self, g3: np.ndarray, wm: np.ndarray, x_shape: tuple[int, ...], kernel: tuple[int, int]
    ) -> np.ndarray:
        """∂L/∂x from g as (N, O, H'·W'): the column gradients g W_pqᵀ of each window offset
        (p, q), as rows (…, C), added onto the padded NHWC image positions they were read
        from (col2im); padding cut away; NCHW.

        With stride 1, one image at a time, each offset's product added while it is still
        in cache: the rows of g are laid out on the padded image's width Wp (the kw − 1 extra
        rows of each output row are zeros), so that output position (i, j), which read
        padded position (i + p, j + q), is flat row (i·Wp + j) and its target flat row
        (i·Wp + j) + (p·Wp + q): offset (p, q)'s whole product is added onto the flattened
        image at one shift, as one contiguous add, 2–3 × faster than row by row. g is laid
        out NCHW, (O, H', Wp), a plain copy, and multiplied transposed (BLAS reads it so
        without a copy): turning it NHWC first cost a third of the time.

        Other strides, a few images at a time: one batched product g W_pqᵀ for every offset
        into a reused buffer (about 1 MiB, still in cache), each offset's slab added as a
        strided view of the image.
        """
        n, c, h, wd = x_shape
        kh, kw = kernel
        (ph, pw), (sh, sw) = self.padding, self.stride
        hp, wp = h + 2 * ph, wd + 2 * pw
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        o = g3.shape[1]
        dtype = np.result_type(g3, wm)
        image = np.empty((n, hp, wp, c), dtype=dtype)  # zeroed by part
        gx = np.empty((n, c, h, wd), dtype=dtype)
        # W per offset, (kh·kw, O, C): W_pqᵀ for the product g_rows W_pqᵀ.
        w_offsets = np.ascontiguousarray(wm.reshape(kh * kw, c, o).transpose(0, 2, 1))

        def on_grid(part: slice) -> None:  # stride 1
            g_grid = np.zeros((o, ho, wp), dtype=g3.dtype)  # columns j ≥ W' stay zero
            g_rows = g_grid.reshape(o, ho * wp).T
            product = np.empty((ho * wp, c), dtype=dtype)
            # The last kw − 1 rows of a product (zeros) would reach past the image: left off.
            length = (ho * wp - (kw - 1)) * c
            shifts = [(p * wp + q) * c for p in range(kh) for q in range(kw)]
            for i in range(part.start, part.stop):
                g_grid[:, :, :wo] = g3[i].reshape(o, ho, wo)
                flat = image[i].reshape(-1)
                for offset, shift in enumerate(shifts):
                    np.matmul(g_rows, w_offsets[offset], out=product)
                    flat[shift : shift + length] += product.reshape(-1)[:length]

        chunk = max(1, _CHUNK_VALUES // max(1, ho * wo * kh * kw * c))

        def by_offset(part: slice) -> None:  # any stride
            buffer = np.empty((kh * kw, min(chunk, n) * ho * wo, c), dtype=dtype)
            for start in range(part.start, part.stop, chunk):
                stop = min(part.stop, start + chunk)
                g_rows = g3[start:stop].transpose(0, 2, 1).reshape(-1, o)
                gcols = np.matmul(g_rows, w_offsets, out=buffer[:, : len(g_rows)])
                per_offset = gcols.reshape(kh, kw, stop - start, ho, wo, c)
                target = image[start:stop]
                for p in range(kh):
                    for q in range(kw):
                        target[:, p : p + sh * ho : sh, q : q + sw * wo : sw] += per_offset[p, q]

        add_columns = on_grid if (sh, sw) == (1, 1) else by_offset

        def input_grad_of(part: slice) -> None:  # one thread's share of the batch
            image[part] = 0
            add_columns(part)
            gx[part] = image[part, ph : ph + h, pw : pw + wd].transpose(0, 3, 1, 2)

        threads.for_slices(input_grad_of, n, ho * wo * kh * kw * c)
        return gx


class _Pool2dOp(Function):
    __slots__ = ("kernel", "shape", "stride")
    fresh_grads = True  # both pools' backward build a new image (col2im, or the tiled path)

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        self.kernel, self.stride = kernel, stride

    def _cols(self, x: np.ndarray) -> np.ndarray:
        _check_nchw(x, self.name)
        self.shape = x.shape
        return _windows(x, self.kernel, self.stride)


class MaxPool2dOp(_Pool2dOp):
    """y = the largest value of each window;  ∂L/∂x = g routed to that value's place (the
    first one on ties, as PyTorch), summed where windows overlap.

    Windows that tile the image (stride == kernel, the usual 2×2 pool) take a fast path:
    the image, cropped to whole windows as PyTorch floors, is viewed without a copy as
    (N, C, H', kh, W', kw); the maximum is kh·kw ``np.maximum`` passes over the window
    offsets, and backward rebuilds each offset's mask with one comparison against y. Only
    the first maximum of a window in row-major order may take the gradient (PyTorch's rule,
    and argmax's): offsets are visited in that order and a window, once taken, is cleared
    from the later masks. g · mask is written straight into its offset's slots of ∂L/∂x, so
    there is no argmax, no gather and no one-hot. A window whose maximum is NaN matches no
    offset; then backward falls back to the general path (argmax picks the first NaN).
    Other windows use the general path: argmax over the windows view, and col2im.
    """

    __slots__ = ()
    name = "max_pool2d"

    def _tiles(self, x: np.ndarray) -> np.ndarray | None:
        """The (N, C, H', kh, W', kw) view of x when the windows tile it, else None."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        n, c, h, w = x.shape
        if (kh, kw) != (sh, sw) or h < kh or w < kw:
            return None
        ho, wo = h // kh, w // kw
        return x[:, :, : ho * kh, : wo * kw].reshape(n, c, ho, kh, wo, kw)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_nchw(x, self.name)
        self.shape = x.shape
        tiles = self._tiles(x)
        if tiles is None:
            return self._forward_general(x)
        kh, kw = self.kernel
        y = np.empty(tiles[:, :, :, 0, :, 0].shape, x.dtype)

        def forward_images(part: slice) -> None:  # one thread's share of the batch
            np.copyto(y[part], tiles[part, :, :, 0, :, 0])
            for p in range(kh):
                for q in range(kw):
                    if p or q:
                        np.maximum(y[part], tiles[part, :, :, p, :, q], out=y[part])

        threads.for_slices(forward_images, x.shape[0], math.prod(x.shape[1:]))
        self.saved = (x, y) if self.needs_input_grad[0] else (None, None)
        return y

    def _forward_general(self, x: np.ndarray) -> np.ndarray:
        cols = self._cols(x)
        kh, kw = self.kernel
        flat = cols.reshape(*cols.shape[:4], kh * kw)
        winner = flat.argmax(axis=-1)
        self.saved = (winner,)
        return np.take_along_axis(flat, winner[..., None], axis=-1)[..., 0]

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        if len(self.saved) == 2:
            x, y = self.saved
            gx = self._backward_tiled(x, y, g)
            if gx is not None:
                return (gx,)
            self._forward_general(x)  # a NaN maximum: let argmax find the winners
        (winner,) = self.saved
        kh, kw = self.kernel
        onehot = winner[..., None] == np.arange(kh * kw)
        gcols = (g[..., None] * onehot).reshape(*g.shape, kh, kw).transpose(0, 1, 4, 5, 2, 3)
        return (_col2im(gcols, self.shape, self.stride),)

    def _backward_tiled(self, x: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray | None:
        tiles = self._tiles(x)
        (kh, kw), (n, c, h, w) = self.kernel, x.shape
        ho, wo = y.shape[2:]
        cropped = (ho * kh, wo * kw) != (h, w)
        image = (np.zeros if cropped else np.empty)((n, c, h, w), dtype=g.dtype)
        gtiles = image[:, :, : ho * kh, : wo * kw].reshape(tiles.shape)
        hits = np.empty(y.shape, dtype=bool)
        taken_all = np.empty(y.shape, dtype=bool)

        def backward_images(part: slice) -> bool:  # one thread's share; False: a NaN maximum
            hit, taken = hits[part], taken_all[part]
            for p in range(kh):
                for q in range(kw):
                    np.equal(tiles[part, :, :, p, :, q], y[part], out=hit)
                    if p == 0 and q == 0:
                        taken[...] = hit
                    else:
                        np.greater(hit, taken, out=hit)  # hit and not yet taken
                        taken |= hit
                    np.multiply(g[part], hit, out=gtiles[part, :, :, p, :, q])
            return bool(taken.all())

        whole = threads.for_slices(backward_images, n, c * h * w)
        return image if all(whole) else None


class AvgPool2dOp(_Pool2dOp):
    """y = the mean of each window of k = kh·kw values;  ∂L/∂x = g / k on each window."""

    __slots__ = ()
    name = "avg_pool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._cols(x).mean(axis=(4, 5))

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        kh, kw = self.kernel
        share = (g / (kh * kw))[:, :, None, None]
        gcols = np.broadcast_to(share, (*g.shape[:2], kh, kw, *g.shape[2:]))
        return (_col2im(gcols, self.shape, self.stride),)


class DropoutOp(Function):
    """y = x · m with a fixed mask m = [u ≥ p] / (1 − p), u uniform;  ∂L/∂x = g · m."""

    __slots__ = ("mask",)
    name = "dropout"

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.mask

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * self.mask,)


# -- softmax and losses -----------------------------------------------------------------------
def log_softmax_array(x: np.ndarray, axis: int) -> np.ndarray:
    """log softmax(x) = x − m − log Σ e^{x − m}, with m = max x so that nothing overflows."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class SoftmaxOp(Function):
    """yᵢ = e^{xᵢ} / Σⱼ e^{xⱼ} along ``dim``;  ∂L/∂xᵢ = yᵢ (gᵢ − Σⱼ gⱼ yⱼ)."""

    __slots__ = ("dim",)
    name = "softmax"

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.exp(log_softmax_array(x, self.dim))
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (y,) = self.saved
        return (y * (g - (g * y).sum(axis=self.dim, keepdims=True)),)


class LogSoftmaxOp(SoftmaxOp):
    """yᵢ = xᵢ − log Σⱼ e^{xⱼ} along ``dim``;  ∂L/∂xᵢ = gᵢ − softmax(x)ᵢ Σⱼ gⱼ."""

    __slots__ = ()
    name = "log_softmax"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = log_softmax_array(x, self.dim)
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (y,) = self.saved
        return (g - np.exp(y) * g.sum(axis=self.dim, keepdims=True),)


class CrossEntropyOp(Function):
    """L = −(1/N) Σₙ log softmax(zₙ)[tₙ] for logits z (N, C) and classes t;
    ∂L/∂z = (softmax(z) − onehot(t)) / N. An empty batch has a NaN loss, as in PyTorch."""

    __slots__ = ("target",)
    name = "cross_entropy"

    def __init__(self, target: np.ndarray) -> None:
        self.target = target

    def forward(self, z: np.ndarray) -> np.ndarray:
        log_p = log_softmax_array(z, 1)
        self.saved = (log_p,)
        picked = log_p[np.arange(len(z)), self.target]
        with np.errstate(invalid="ignore", divide="ignore"):  # only for N = 0
            return -np.true_divide(picked.sum(), len(z))

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (log_p,) = self.saved
        n = len(log_p)
        grad = np.exp(log_p)
        if n == 0:
            return (grad,)
        grad[np.arange(n), self.target] -= 1
        return (grad * (g / n),)


class BCEWithLogitsOp(Function):
    """L = mean(max(z, 0) − z·y + log(1 + e^{−|z|})) = mean(−y log σ(z) − (1−y) log(1−σ(z)));
    ∂L/∂z = (σ(z) − y) / n,  ∂L/∂y = −z / n."""

    __slots__ = ()
    name = "binary_cross_entropy_with_logits"

    def forward(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        if z.shape != y.shape:
            raise ShapeError(
                f"{self.name}: logits and target must have one shape, got {z.shape} and {y.shape}"
            )
        self.saved = (z, y)
        return (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).mean()

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        z, y = self.saved
        scale = g / z.size
        gy = -z * scale if self.needs_input_grad[1] else None
        return (stable_sigmoid(z) - y) * scale, gy

/* The per-value kernels, written once with GCC/Clang vector extensions and instantiated
 * once per SIMD target by targets.h, which defines before each inclusion:
 *   KFN(name)   the function name with a per-target suffix,
 *   KATTR       the function attributes (target, inline policy),
 *   VSQRT8(x)   correctly rounded sqrt of a v8f,
 *   VSQRT4(x)   correctly rounded sqrt of a v4d,
 *   MASK8(m), MASK4(m)  the sign bits of a lane mask as an int (lane 0 in bit 0),
 *   COMPRESS4(v, bits, dst, idx, base)  store the 64-bit lanes of v selected by bits
 *               contiguously at dst (4 slots written) and base + lane at idx,
 * and the lane vocabulary of normal32.h (lanes.h: VL, VF, VSELW, ...).
 * No include guard: included three times on purpose.
 */
#include "special.h"
#include "normal32.h"
#include "distributions.h"
#include "writers.h"

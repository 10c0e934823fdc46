// Transport bindings (packets, container, loss models, jitter buffer): filled in by the
// transport work; kept compiling at every step.
#include "bindings/common.h"

namespace soundspring::bindings {

void bind_transport(py::module_& m) { (void)m; }

}  // namespace soundspring::bindings

"""Neural style transfer as the course teaches it: the cost functions (`costs`) and the pixel
optimisation over features tapped by node name from any lowered spec (`transfer`)."""

package web

import "github.com/gin-gonic/gin"

func (p *Pages) registerCustomer(r gin.IRouter) {}
